"""``mapdiff upload requests.parquet [MORE...] --sim sim/ -o uploaded/ [--store URL] [--bitrate-mbps 8]``
(simulation)"""

from __future__ import annotations

import click

from mapdiff_cli.options import Progress, fail, info, output_option, quiet_option, store_option


@click.command(short_help="Simulate the cars uploading the requested clips: keep the detections inside them.")
@click.argument("requests_paths", metavar="REQUESTS...", nargs=-1, required=True)
@click.option("--sim", "sim_dir", required=True, metavar="DIR", help="A simulation folder (mapdiff simulate -o).")
@output_option("Folder for detections.parquet (the detections inside the clips) and upload.json.", kind="folder",
               marker="upload.json")
@store_option("Task store holding the requests: their tasks become uploaded "
              "[$MAPDIFF_STORE, else tasks.sqlite beside the first REQUESTS].")
@click.option("--bitrate-mbps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True,
              help="What a second of video costs to send (Mbit/s).")
@quiet_option
def upload(requests_paths, sim_dir, output, store_url, bitrate_mbps, quiet):
    """The production loop, simulated: the cars upload the clips the plans requested (REQUESTS,
    mapdiff plan -o; several: a first plan and its confirmation rounds) and only those reach the
    detector. Writes the simulation's detections that
    fall inside the clips, marks the tasks requested then uploaded, and reports the clip-seconds
    and bytes the plan cost."""
    import json
    import os

    from mapdiff.clips import read_clip_files
    from mapdiff.errors import MapdiffError
    from mapdiff.io import atomic_dir, check_exists
    from mapdiff.store import default_store, open_store
    from mapdiff.upload import check_tasks, mark_uploaded, upload_file

    detections = f"{str(sim_dir).rstrip('/')}/detections.parquet"
    try:
        clips = read_clip_files(requests_paths)
        check_exists(detections)
        with open_store(store_url or default_store(requests_paths[0])) as store:
            check_tasks(store, clips, source=", ".join(requests_paths))
            progress = Progress(None, "detections", quiet=quiet)
            with atomic_dir(output) as tmp:
                result = upload_file(detections, clips, os.path.join(tmp, "detections.parquet"),
                                     bitrate_mbps=bitrate_mbps, progress=progress)
                with open(os.path.join(tmp, "upload.json"), "w") as f:
                    json.dump({**result.summary(), "bitrate_mbps": bitrate_mbps}, f, indent=2, sort_keys=True)
                    f.write("\n")
            progress.finish()
            uploaded = mark_uploaded(store, clips)
    except MapdiffError as exc:
        fail(exc)
    share = 100.0 * result.kept / result.detections if result.detections else 0.0
    info(f"{result.clips:,} clips, {result.clip_seconds:,.0f} clip-seconds, {result.bytes / 1e6:,.1f} MB at "
         f"{bitrate_mbps:g} Mbit/s; {result.kept:,} of {result.detections:,} detections ({share:.1f} %) in the "
         f"clips; {uploaded:,} tasks marked uploaded", quiet=quiet)
