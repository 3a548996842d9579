"""`tsne-dist`: parse flags, call the pipeline, show progress and one-line errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Sequence

from .errors import UserError
from .progress import enable_bars
from .settings import SETTINGS, canonical_name, flag_text
from .version import __version__

logger = logging.getLogger("tsne_dist")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help, wrapped without breaking words at hyphens (``barnes-hut``, ``tsne-dist``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help uses :class:`_HelpFormatter` (sub-commands too)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _add_logging_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no logs or progress bars, only warnings, errors and the result's one line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, and tracebacks with errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tsne-dist``."""
    parser = _Parser(prog="tsne-dist", description="Trustworthy t-SNE maps of large item catalogs.")
    parser.add_argument("--version", action="version", version=f"tsne-dist {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="make a map from a config file and/or flags")
    run.add_argument("config", nargs="?", help="YAML or TOML config file (flags override it)")
    run.add_argument("--dry-run", action="store_true",
                     help="check everything, print the resolved plan and its expected peak memory, write nothing")
    _add_setting_flags(run)
    _add_logging_flags(run)

    sweep = commands.add_parser("sweep", help="one map per perplexity from one kNN graph: PNG grid, metrics table",
                                description="One run per perplexity in OUT/perplexity-P/ (the kNN graph computed "
                                            "once, for the largest), then OUT/sweep.png, sweep.json and sweep.md.")
    sweep.add_argument("config", nargs="?", help="YAML or TOML config file (flags override it)")
    sweep.add_argument("--perplexity", required=True, metavar="LIST",
                       help="perplexities, e.g. 10,30,100 (each value once; the largest runs first)")
    _add_setting_flags(sweep, skip=("perplexity",))
    _add_logging_flags(sweep)

    demo = commands.add_parser("demo", help="map a real catalog that installs offline (MovieLens films by default)")
    demo.add_argument("--dataset", choices=("movielens", "mnist", "digits", "glove"), default="movielens")
    demo.add_argument("--out", default="tsne-dist-demo", help="output folder (default: ./tsne-dist-demo)")
    demo.add_argument("--seed", type=int, default=0)
    _add_logging_flags(demo)

    info = commands.add_parser("info", help="what a run holds: stages, parameters, timings, metrics")
    info.add_argument("out", help="the run's output folder or URL")
    _add_storage_flag(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_logging_flags(info)

    export = commands.add_parser("export", help="write OUT/viewer/, the interactive browser map (run does it too)")
    export.add_argument("out", help="the run's output folder or URL")
    _add_storage_flag(export)
    export.add_argument("--compare", metavar="OTHER_OUT", default=None,
                        help="another run's output folder: a second layout, aligned on shared ids, to animate to")
    _add_logging_flags(export)

    warm = commands.add_parser("warm-up", help="compile the numba code once into the cache (for images and CI)")
    warm.add_argument("--part", choices=("pynndescent", "kernels", "all"), default="all",
                      help="what to compile (the two parts can run in two processes at once)")
    _add_logging_flags(warm)

    settings = commands.add_parser("settings", help="print every run setting as a Markdown table (the README's)")
    _add_logging_flags(settings)

    transform = commands.add_parser("transform", help="place new items into a finished map without moving it")
    transform.add_argument("reference", help="a finished run's output folder or URL (made from vectors)")
    transform.add_argument("--vectors", required=True, help="the new items' vectors (.npy, .parquet, .zarr)")
    transform.add_argument("--out", required=True, help="output folder or URL (not a run's folder)")
    transform.add_argument("--ids", default=None, help="the new items' ids (default: from the vectors file)")
    transform.add_argument("--metadata", default=None, help="metadata of the new items, joined by --id-col")
    transform.add_argument("--id-col", default="id", help="id column of Parquet/CSV inputs (default: id)")
    transform.add_argument("--vector-col", default=None, help="Parquet: the list column holding the vectors")
    transform.add_argument("--perplexity", type=float, default=None, help="default: the reference run's")
    transform.add_argument("--n-iter", type=int, default=None, help="optimisation steps (default: 250)")
    transform.add_argument("--color-by", default=None, help="column that colours map.png (default: the reference's)")
    _add_storage_flag(transform)
    _add_logging_flags(transform)

    compare = commands.add_parser("compare", help="two finished maps side by side, aligned: report.html, compare.json")
    compare.add_argument("run_a", help="a finished run's output folder or URL")
    compare.add_argument("run_b", help="another finished run of the same catalog (fitted onto A)")
    compare.add_argument("--out", required=True, help="report folder or URL")
    compare.add_argument("--color-by", default=None, help="column colouring both maps (default: A's color_by)")
    compare.add_argument("--label", default=None, help="column for per-label silhouettes (default: A's label)")
    _add_storage_flag(compare)
    _add_logging_flags(compare)

    view = commands.add_parser("view", help="serve OUT/viewer/ on 127.0.0.1 and print its URL")
    view.add_argument("out", help="the run's output folder or URL (a viewer on object storage is downloaded)")
    _add_storage_flag(view)
    view.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    _add_logging_flags(view)
    return parser


def _add_setting_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per run setting (the settings table), except ``skip``."""
    for setting in SETTINGS:
        if setting.name in skip:
            continue
        if setting.kind == "bool":
            parser.add_argument(setting.cli_flag, dest=setting.name, action="store_true", default=None,
                                help=flag_text(setting.help))
        else:
            parser.add_argument(setting.cli_flag, dest=setting.name, default=None, metavar=setting.name.upper(),
                                help=flag_text(setting.help_line) + _default_note(setting))


def _add_storage_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-options", default=None, metavar="JSON",
                        help="fsspec options for a URL, e.g. {\"endpoint_url\": \"http://host:9000\"} "
                             "(default: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... as usual)")


def _storage_options(args: argparse.Namespace) -> dict | None:
    from .settings import BY_NAME, coerce

    return coerce(BY_NAME["storage_options"], args.storage_options)


def _default_note(setting) -> str:
    """How ``--help`` ends a flag's line: its default, or that it is required."""
    if setting.default_text == "required":
        return " (required)"
    if setting.default is not None or setting.default_text not in (None, "–"):
        return f"; default: {setting.shown_default}"
    return ""


def setup_logging(quiet: bool, verbose: bool) -> None:
    """Log to stderr: warnings only with --quiet, debug with --verbose."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    enable_bars(not quiet)


def _requested_settings(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    """The config file's settings with the flags given on top (non-None wins)."""
    from .config import read_config_file

    file_values = read_config_file(args.config) if args.config else {}
    overrides = {setting.name: getattr(args, setting.name) for setting in SETTINGS if setting.name not in skip}
    # an error about a setting the file gave names the file's key, not a flag the user never typed
    args.from_file = {canonical_name(key): os.path.basename(args.config) for key, value in file_values.items()
                      if value is not None and overrides.get(canonical_name(key)) is None}
    return {**file_values, **{name: value for name, value in overrides.items() if value is not None}}


def _sweep_command(args: argparse.Namespace) -> int:
    from .pipeline.sweep import SWEEP_PNG, markdown_table, sweep

    settings = _requested_settings(args, skip=("perplexity",))
    settings.pop("perplexity", None)
    _end_on_sigterm()
    result = sweep(settings, args.perplexity)
    print(markdown_table(result.table).rstrip())
    print(f"grid: {result.out}/{SWEEP_PNG}")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    from .config import build_config
    from .pipeline import run
    from .pipeline.finish import key_figures

    config = build_config(_requested_settings(args))
    # kubelet stops a pod with SIGTERM: end like Ctrl+C, so a cluster made for the run is deleted
    _end_on_sigterm()
    if args.dry_run:
        from .pipeline.dry_run import plan_report

        print(plan_report(config))
        return 0
    result = run(config)
    print(f"map: {result.out}  {key_figures(result.metrics)}")  # the result, like demo and export (-q: no logs)
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .pipeline.finish import key_figures

    result = run_demo(args.dataset, args.out, seed=args.seed)
    print(f"map: {os.path.join(result.out, 'map.png')}")
    print(key_figures(result.metrics))
    return 0


def _info_command(args: argparse.Namespace) -> int:
    from .pipeline import describe, open_run

    info = open_run(args.out, storage_options=_storage_options(args))
    if args.json:
        print(json.dumps(info.as_dict(), indent=2, default=str))
    else:
        print(describe(info))
    return 0


def _export_command(args: argparse.Namespace) -> int:
    from .viz.export import export_viewer

    result = export_viewer(args.out, compare=args.compare, storage_options=_storage_options(args))
    size = f"{result.data_bytes / 1e6:.1f} MB" if result.data_bytes >= 1e6 else f"{result.data_bytes / 1e3:.0f} kB"
    print(f"viewer: {result.path} ({size} of data); serve it with: tsne-dist view {args.out}")
    return 0


def _transform_command(args: argparse.Namespace) -> int:
    from .pipeline.transform import transform

    options = {} if args.n_iter is None else {"n_iter": args.n_iter}
    result = transform(args.reference, args.vectors, args.out, ids=args.ids, metadata=args.metadata,
                       id_col=args.id_col, vector_col=args.vector_col, perplexity=args.perplexity,
                       color_by=args.color_by, storage_options=_storage_options(args), **options)
    metrics = result.metrics
    print(f"placed {metrics['n_new']:,} new items beside the map in {metrics['transform_of']} (unchanged): recall@10 "
          f"{metrics['knn_recall@10']:.3f}, trustworthiness@10 {metrics['trustworthiness@10']:.3f}; "
          f"written to {result.out}")
    return 0


def _compare_command(args: argparse.Namespace) -> int:
    from .pipeline.compare import compare

    result = compare(args.run_a, args.run_b, args.out, color_by=args.color_by, label=args.label,
                     storage_options=_storage_options(args))
    summary = result.summary
    print(f"{summary['n_shared']:,} shared items: median displacement {summary['displacement_median']:.2f}, "
          f"map neighbours Jaccard {summary['map_jaccard_mean']:.2f}; report: {result.report}")
    return 0


def _warm_up_command(args: argparse.Namespace) -> int:
    from .jit import configure_numba_cache
    from .warmup import PARTS, warm_up

    parts = PARTS if args.part == "all" else (args.part,)
    seconds = {part: warm_up(part) for part in parts}
    print(f"numba cache {configure_numba_cache()}: " + ", ".join(f"{part} {value:.0f} s" for part, value in seconds.items()))
    return 0


def _settings_command(args: argparse.Namespace) -> int:
    from .settings import readme_table

    print(readme_table())
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _end_on_sigterm() -> None:
    """Treat SIGTERM (kubelet stopping a pod, ``kill``) as Ctrl+C, so ``finally`` blocks run (a
    cluster made for the run is deleted); only the main thread may set a handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _view_command(args: argparse.Namespace) -> int:
    from .viz.server import make_server, serve_until_interrupted, server_url

    server = make_server(args.out, args.port, storage_options=_storage_options(args))
    _end_on_sigterm()  # a downloaded viewer's temporary copy is removed on kill too
    print(f"viewer: {server_url(server)}  (Ctrl+C to stop)", flush=True)
    try:
        serve_until_interrupted(server)
    except KeyboardInterrupt:
        print("viewer stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done, 2 user error, 1 anything else)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    handlers = {"run": _run_command, "demo": _demo_command, "info": _info_command, "export": _export_command,
                "view": _view_command, "settings": _settings_command, "transform": _transform_command,
                "compare": _compare_command, "sweep": _sweep_command,
                "warm-up": _warm_up_command}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"tsne-dist: error: {flag_text(str(exc), getattr(args, 'from_file', None))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tsne-dist: interrupted; finished stages are kept, rerun to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tsne-dist settings | head`: the reader is gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
