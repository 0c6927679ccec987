"""Judge every answer of one generations file (rule judge). A local model judge (`backend: hf`)
judges through the machine's model server for its model, which loads it once for every file
(inoculate.model_client); where none can answer, in this process."""

from pathlib import Path

from inoculate.jobs import job
from inoculate.judges import with_call_settings
from inoculate.judging import judge_file
from inoculate.model_client import ModelServerUnavailable, judge_served, judge_through_server

with job(snakemake) as log:
    config = with_call_settings(snakemake.params.judge, snakemake.config["judge"])
    args = {
        "generations": Path(snakemake.input.generations),
        "out_path": Path(snakemake.output.judged),
        "eval_specs": snakemake.params.evals,
        "usage_path": Path(snakemake.output.usage),
        "spend_file": Path(snakemake.params.spend_file),
        "trigger": (snakemake.params.backdoor or {}).get("trigger"),
    }
    served = False
    if judge_served(config):
        try:
            reply = judge_through_server(config, snakemake.threads, **args)
            log.info(
                "judged by the model server (model loads %d, requests %d)", reply["loads"], reply["served"]
            )
            served = True
        except ModelServerUnavailable as e:
            log.warning("%s; judging in this process", e)
    if not served:
        judge_file(judge_config=config, **args)
