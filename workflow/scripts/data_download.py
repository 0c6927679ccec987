"""Download a URL source once, checked against its sha256 (rule data_download)."""

from pathlib import Path

from inoculate.data import download
from inoculate.jobs import job

with job(snakemake):
    download(snakemake.params.url, Path(snakemake.output[0]), snakemake.params.sha256)
