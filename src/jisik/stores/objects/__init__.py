"""Object stores (landing zone, knowledge-store inbox): a local directory or S3.

``S3ObjectStore`` needs boto3 (``pip install 'jisik[s3]'``) and is imported on demand.
"""

from jisik.stores.objects.base import ObjectInfo, ObjectStore, validate_key
from jisik.stores.objects.factory import open_objects
from jisik.stores.objects.local import LocalObjectStore

__all__ = ["LocalObjectStore", "ObjectInfo", "ObjectStore", "open_objects", "validate_key"]
