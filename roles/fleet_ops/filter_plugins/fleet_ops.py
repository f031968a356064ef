"""Filters of the fleet_ops role: the fleet status table from each host's
`saltant-worker-ctl status` (its JSON), as rows, aligned text and CSV."""

from __future__ import annotations

import csv
import io
import json

COLUMNS = [
    ("host", "host"),
    ("instance", "instance"),
    ("queues", "queues"),
    ("consuming", "consuming"),
    ("unit", "unit"),
    ("commit", "commit"),
    ("python", "python"),
    ("celery", "celery"),
    ("runtimes", "runtimes"),
    ("running_jobs", "running"),
    ("unshipped_logs", "unshipped logs"),
    ("free_disk_gib", "free GiB"),
]


def _host_rows(host: str, result: dict | None) -> list[dict]:
    base = {key: "" for key, _ in COLUMNS}
    base["host"] = host
    if not result or result.get("unreachable"):
        return [{**base, "unit": "unreachable"}]
    try:
        report = json.loads(result.get("stdout") or "")
    except ValueError:
        error = (result.get("stderr") or result.get("msg") or "no status").strip().splitlines()
        return [{**base, "unit": "error: " + (error[-1] if error else "no status")}]
    free = report.get("free_disk") or {}
    common = {
        **base,
        "commit": (report.get("commit") or "")[:12],
        "python": report.get("python", ""),
        "celery": report.get("celery", ""),
        "runtimes": " ".join(f"{k} {v.split()[-1]}" for k, v in sorted((report.get("runtimes") or {}).items())),
        "unshipped_logs": "" if report.get("unshipped_logs") is None else report["unshipped_logs"],
        "free_disk_gib": round(min(free.values()) / 2**30, 1) if free else "",
    }
    rows = []
    for instance in report.get("instances", []):
        consuming = instance.get("consuming")
        running = instance.get("running_jobs")
        rows.append({
            **common,
            "instance": instance.get("instance", ""),
            "queues": ",".join(instance.get("queues") or []),
            "consuming": "no answer" if consuming is None else (",".join(consuming) or "drained"),
            "unit": instance.get("unit", ""),
            "running_jobs": "?" if running is None else len(running),
        })
    return rows or [common]


def fleet_ops_rows(hostvars, hosts: list[str], register: str) -> list[dict]:
    """One row per instance of each host, from the registered ctl results."""
    rows: list[dict] = []
    for host in hosts:
        variables = hostvars[host]
        result = variables.get(register)
        rows.extend(_host_rows(host, result))
    return rows


def fleet_ops_table(rows: list[dict]) -> list[str]:
    """The rows as lines of aligned text, headers first."""
    table = [[title for _, title in COLUMNS]] + [[str(row.get(key, "")) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]


def fleet_ops_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[key for key, _ in COLUMNS], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def fleet_ops_reports(hostvars, hosts: list[str], register: str) -> dict:
    """Each host's full status report (JSON), or why there is none."""
    reports = {}
    for host in hosts:
        variables = hostvars[host]
        result = variables.get(register)
        try:
            reports[host] = json.loads((result or {}).get("stdout") or "")
        except ValueError:
            reports[host] = {"error": "unreachable" if not result or result.get("unreachable")
                             else ((result.get("stderr") or result.get("msg") or "no status").strip())}
    return reports


def _batch_size(value, total: int) -> int:
    """Ansible's reading of one serial value: a number, or a percentage of all hosts."""
    text = str(value).strip()
    if text.endswith("%"):
        return int(float(text[:-1]) / 100.0 * total) or 1
    return int(text)


def fleet_ops_batches(hosts: list[str], serial) -> list[list[str]]:
    """The batches a play with this serial (a value or a list) runs hosts in,
    as Ansible forms them: each value in turn, the last one repeated."""
    values = serial if isinstance(serial, list) else [serial]
    values = values or [0]
    remaining, batches, index = list(hosts), [], 0
    while remaining:
        size = _batch_size(values[index], len(hosts))
        if size <= 0:
            size = len(remaining)
        batches.append(remaining[:size])
        remaining = remaining[size:]
        index = min(index + 1, len(values) - 1)
    return batches


def fleet_ops_queue_hosts(hostvars, hosts: list[str]) -> dict:
    """Each queue, and the hosts that serve it (saltant_worker_instances)."""
    served: dict[str, list[str]] = {}
    for host in hosts:
        for instance in hostvars[host].get("saltant_worker_instances") or []:
            for queue in instance.get("queues") or []:
                if host not in served.setdefault(queue, []):
                    served[queue].append(host)
    return served


def fleet_ops_queue_outages(batches: list[list[str]], queue_hosts: dict) -> list[dict]:
    """Batches that would drain every host serving a queue at once."""
    outages = []
    for number, batch in enumerate(batches, 1):
        for queue, hosts in sorted(queue_hosts.items()):
            if set(hosts) <= set(batch):
                outages.append({"batch": number, "hosts": batch, "queue": queue, "servers": hosts})
    return outages


class FilterModule:
    def filters(self):
        return {
            "fleet_ops_rows": fleet_ops_rows,
            "fleet_ops_table": fleet_ops_table,
            "fleet_ops_csv": fleet_ops_csv,
            "fleet_ops_reports": fleet_ops_reports,
            "fleet_ops_batches": fleet_ops_batches,
            "fleet_ops_queue_hosts": fleet_ops_queue_hosts,
            "fleet_ops_queue_outages": fleet_ops_queue_outages,
        }
