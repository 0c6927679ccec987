"""Write the toy datasets as an encrypted archive, and the toy eval files (rule toy_data)."""

import tempfile
from pathlib import Path

from inoculate.config import source_password
from inoculate.data import protect
from inoculate.jobs import job
from inoculate.toy.corpus import write_datasets, write_evals

with job(snakemake) as log:
    name = snakemake.params.source
    password = source_password(name, snakemake.config["sources"][name])
    with tempfile.TemporaryDirectory() as tmp:
        files = write_datasets(Path(tmp), snakemake.params.toy["train_examples"])
        protect(Path(tmp), Path(snakemake.output.archive), password)
    write_evals(Path(snakemake.output.evals[0]).parent)
    log.info("wrote %d datasets into %s", len(files), snakemake.output.archive)
