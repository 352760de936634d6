"""The metric writer: JSON lines, and TensorBoard events that hide retrained steps."""

import glob
import json
import os
import struct

from tensorboardX.proto import event_pb2

from jaxgen.train.metrics_log import MetricWriter


def _events(path):
    """The Event records of one TFRecord event file (length, crc, data, crc)."""
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[i + 12:i + 12 + n])
        yield event
        i += 12 + n + 4


def test_a_resumed_writer_purges_the_steps_it_trains_again(tmp_path):
    first = MetricWriter(str(tmp_path))
    for step in (1, 2, 3, 4):
        first.write(step, {"loss": 10.0 - step})
    first.close()
    resumed = MetricWriter(str(tmp_path), start_step=2)  # steps 3 and 4 are trained again
    for step in (3, 4, 5):
        resumed.write(step, {"loss": 1.0 / step})
    resumed.close()

    files = sorted(glob.glob(os.path.join(tmp_path, "tb", "events.*")), key=os.path.getmtime)
    assert len(files) == 2
    starts = [[(e.step, e.session_log.status) for e in _events(f) if e.HasField("session_log")]
              for f in files]
    assert starts[0] == []  # a fresh run purges nothing
    assert starts[1] == [(2, event_pb2.SessionLog.START)]
    scalars = [(e.step, e.summary.value[0].tag) for e in _events(files[1])
               if e.HasField("summary")]
    assert scalars == [(3, "loss"), (4, "loss"), (5, "loss")]
    lines = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 3, 4, 5]  # the loop rewinds this file
