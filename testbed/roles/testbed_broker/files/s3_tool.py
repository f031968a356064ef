#!/opt/testbed/moto/bin/python
"""Test bed helper for the S3 stand-in (moto server on this host).

    s3_tool.py mb BUCKET        create BUCKET (no error if it exists)
    s3_tool.py objects BUCKET   print {key: content} of every object as JSON
"""

from __future__ import annotations

import json
import sys

import boto3

ENDPOINT = "http://127.0.0.1:9000"


def client():
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="testbed", aws_secret_access_key="testbed")


def main(argv: list[str]) -> int:
    command, bucket = argv
    s3 = client()
    if command == "mb":
        existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        return 0
    if command == "objects":
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                objects[item["Key"]] = body.decode("utf-8", "replace")
        print(json.dumps(objects, sort_keys=True))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
