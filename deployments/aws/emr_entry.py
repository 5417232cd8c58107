"""EMR Serverless entry point (upload to IOT_EMR_ENTRY_POINT): the hourly pipeline, reported through Pipes."""

from iot_assets.deployments.emr_serverless import remote_main

if __name__ == "__main__":
    remote_main()
