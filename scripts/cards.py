"""What the evaluation scripts (``evaluate_ixi``, ``evaluate_denoisers``, ``evaluate_prior``) share when they
export a trained run as a checkpoint folder: the run's records, the paragraph on how it was trained, and
the preset written with its card and recipe."""

from __future__ import annotations

import json
import os
import shutil


def read_run(run_dir) -> tuple[dict, list]:
    """(run.json, sessions.json) of a finished training run."""
    with open(os.path.join(run_dir, "run.json")) as handle:
        run = json.load(handle)
    with open(os.path.join(run_dir, "sessions.json")) as handle:
        sessions = json.load(handle)
    return run, sessions


def training_paragraph(run, sessions, curve: str) -> str:
    """The card paragraph on how the weights were trained; ``curve`` says what the validation curve shows."""
    hours = run["wall_time_seconds"] / 3600
    examples = run["steps"] * run["batch_size"]
    from fastmri_zoo.training.fit import kept_sentence

    kept = run.get("kept")
    kept_text = " " + kept_sentence(kept, run["steps"]) if isinstance(kept, dict) else ""
    return (f"Trained with `{run['command']}` (the recipe `recipe.json` in this folder): {run['steps']} optimizer steps "
            f"of batch {run['batch_size']} ({examples:,} training examples, each drawn afresh), {run['optimizer']}, "
            f"loss {run['loss']}, seed {run['seed']}; {hours:.1f} h of wall time on a 2-core CPU over {len(sessions)} "
            f"session(s).{kept_text} The validation curve ({curve}):\n\n![validation curve](validation_curve.png)")


def write_checkpoint(recipe, run_dir, weights_dir, run, card, metrics, pictures=()) -> str:
    """Write ``weights_dir/recipe.name``: the trained preset ``run_dir/preset`` with ``card`` and ``metrics``,
    the recipe that made it and the ``pictures`` of ``run_dir`` the card shows. Returns the folder."""
    from fastmri_zoo.presets import from_preset, save_to_preset, verify_preset_folder, zeros_like_signature
    from fastmri_zoo.training.config import RECIPE_FILE

    preset = os.path.join(run_dir, "preset")
    target = os.path.join(weights_dir, recipe.name)
    recipe_text = open(recipe.source, encoding="utf-8").read()
    # the inputs the trained preset records (a loaded model may not report its build shapes)
    example = zeros_like_signature(verify_preset_folder(preset)["input_signature"])
    save_to_preset(from_preset(preset), target, training_command=run["command"], example_inputs=example,
                   metrics=metrics, **card)
    with open(os.path.join(target, RECIPE_FILE), "w", encoding="utf-8") as handle:
        handle.write(recipe_text)  # the preset folder keeps the recipe that made it
    for picture in pictures:
        shutil.copyfile(os.path.join(run_dir, picture), os.path.join(target, picture))
    return target


def add_run_commands(sub, what: str):
    """The ``evaluate`` and ``export`` subcommands of a script that takes a recipe file (a denoiser's or a
    prior's): ``evaluate RECIPE DATA_DIR RUN_DIR [--preset P]`` and ``export RECIPE DATA_DIR RUN_DIR
    WEIGHTS_DIR``; returns the evaluate parser for the script's own options."""
    evaluate = sub.add_parser("evaluate")
    export = sub.add_parser("export")
    for parser in (evaluate, export):
        parser.add_argument("recipe")
        parser.add_argument("data_dir")
        parser.add_argument("run_dir")
    evaluate.add_argument("--preset", default=None, help=f"the {what} to score (default: RUN_DIR/preset)")
    export.add_argument("weights_dir")
    return evaluate
