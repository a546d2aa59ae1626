"""The workers' metric files at a scrape: a replaced worker's live gauges are forgotten."""

import os
import subprocess
import sys

from prometheus_client import mmap_dict

from server.metrics_port import WorkersCollector


def gauge_file(folder, mode: str, pid: int, value: float) -> None:
    key = mmap_dict.mmap_key("keepnotes_in_flight", "keepnotes_in_flight", [], [], "")
    values = mmap_dict.MmapedDict(str(folder / f"gauge_{mode}_{pid}.db"))
    values.write_value(key, value, 0)
    values.close()


def samples(collector) -> float:
    return sum(sample.value for family in collector.collect() for sample in family.samples)


def test_a_dead_workers_live_gauge_is_forgotten_a_running_ones_kept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead, alive = int(gone.stdout), os.getpid()
    gauge_file(tmp_path, "livesum", dead, 5)
    gauge_file(tmp_path, "livesum", alive, 2)

    assert samples(WorkersCollector(str(tmp_path))) == 2
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()
    # Negative control: the files alone, as prometheus-client reads them, count the dead one.
    gauge_file(tmp_path, "livesum", dead, 5)
    assert samples(WorkersCollector(str(tmp_path)).files) == 7
