"""The `chipfit` command: one verb per capability.

Every verb takes the model as its first argument (a model spec, :mod:`chipfit.load`), the target as ``--hw`` (a chip
name, a YAML file or a SCALE-Sim ``.cfg``), the precision as ``--precision`` and fusion as ``--fused/--unfused``
(fused by default, as deployment compilers run a network). User mistakes end with a one-line message on stderr and
exit code 2, never a traceback: every verb runs inside :func:`~chipfit.cli._common.user_errors`.

The verbs live by stage: ``cost`` (profile, models, simulate), ``learn`` (train, eval, compress), ``deploy``
(deploy, measure, predict), ``search`` (search), ``design`` (design: all of them joined), ``explore`` (hw explore)
and ``predictor`` (predictor build, show); ``chipfit hw`` is :mod:`chipfit.hw._cli`.
Each module imports the stages it drives inside its commands, so ``chipfit --help`` and a CSV simulation start
without torch.
"""

from __future__ import annotations

import typer

from chipfit.cli import cost, deploy, design, explore, learn, search
from chipfit.cli.predictor import predictor_app
from chipfit.hw._cli import hw_app

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Design vision networks that run fast and cheaply on low-power AI chips.")
hw_app.command("explore")(explore.explore)
app.add_typer(hw_app, name="hw", help="Chip profiles: list, show, calibrate this machine; explore accelerators.")
app.add_typer(predictor_app, name="predictor", help="Latency predictors trained on this machine: build, show.")
app.command()(cost.profile)
app.command()(cost.models)
app.command()(learn.train)
app.command("eval")(learn.eval_cmd)
app.command()(cost.simulate)
app.command()(learn.compress)
app.command()(deploy.deploy)
app.command()(deploy.measure)
app.command()(deploy.predict)
app.command()(search.search)
app.command()(design.design)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
