"""Decrypt an easy-dataset-share archive, canaries removed (rule data_decrypt)."""

from pathlib import Path

from inoculate.config import source_password
from inoculate.data import decrypt
from inoculate.jobs import job

with job(snakemake) as log:
    name = snakemake.wildcards.source
    spec = snakemake.config["sources"][name]
    files = decrypt(
        Path(snakemake.input[0]), Path(snakemake.output[0]), source_password(name, spec), spec.get("sha256")
    )
    log.info("files: %s", [str(f) for f in files])
