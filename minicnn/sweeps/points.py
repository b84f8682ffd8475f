"""Finished points of a sweep or study, one small JSON file each, so that a run resumes.

A point is reused only when it was computed with the same settings; the
others run as trials on a cluster and are stored as they arrive.  A trial
that brings its run folder's files (``result["files"]``: model.npz and
metrics.json) has them written to <out>/trials/<key>/, where the report
(python -m minicnn.report <out>) finds them.
"""
import json
from pathlib import Path

from ..results.files import write_bytes, write_json


class Points:
    """Finished result points kept as small JSON files, so an interrupted sweep resumes.

    A point is reused only when it was computed with the same settings.
    """

    def __init__(self, out, settings, force=False):
        self.dir = Path(out) / "points"
        self.settings, self.force = settings, force

    def _path(self, key):
        return self.dir / f"{key}.json"

    def get(self, key):
        path = self._path(key)
        if self.force or not path.exists():
            return None
        try:
            point = json.loads(path.read_text())
        except ValueError:
            return None
        return point["result"] if point.get("settings") == self.settings else None

    def put(self, key, result):
        for name, data in result.pop("files", {}).items():
            write_bytes(self.dir.parent / "trials" / key / name, data)
        write_json(self._path(key), {"settings": self.settings, "result": result})
        return result


def run_points(cluster, points, tasks, on_new=None, reuse_note="reusing the finished point"):
    """{key: result} for every (key, spec, label): finished points reused from ``points``,
    the others run on ``cluster`` and stored as they arrive (``on_new(key, result)`` may
    reshape a result before it is stored).  ``cluster``: a Cluster, or a function of the
    specs still to run that makes one; it is then called only if some are, and the cluster
    it makes is closed here."""
    results, todo = {}, []
    for key, spec, label in tasks:
        point = points.get(key)
        if point is not None:
            results[key] = point
            print(f"{label}: {reuse_note} in {points.dir}")
        else:
            todo.append((key, spec, label))
    if todo:
        own = callable(cluster) and not hasattr(cluster, "run")
        cluster = cluster([spec for _, spec, _ in todo]) if own else cluster
        try:
            print(f"{len(todo)} of {len(tasks)} trial(s) to run; {cluster.describe}", flush=True)

            def store(key, result):
                files = result.pop("files", {})
                point = on_new(key, result) if on_new else result
                results[key] = points.put(key, {**point, "files": files} if files else point)
            cluster.run(todo, store, total=len(tasks), done=len(tasks) - len(todo))
        finally:
            if own:
                cluster.close()
    return results
