"""Checks docker-compose.yml against the Compose specification's JSON schema, then what the schema
cannot see: the services Orrery needs, files the services mount, Prometheus targets, and the Grafana
dashboard's metrics (each must be documented in the README).

usage: check_compose.py REPO_ROOT COMPOSE_SPEC_SCHEMA_JSON
Prints one line per problem and exits 1 if there is any; prints "compose ok" otherwise.
"""

import json
import os
import re
import sys

import jsonschema
import yaml


def main() -> int:
    root, schema_path = sys.argv[1], sys.argv[2]
    problems = []
    with open(os.path.join(root, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    with open(schema_path) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    for err in sorted(validator.iter_errors(compose), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(top)"
        problems.append(f"schema: {where}: {err.message}")

    services = compose.get("services", {})
    wanted = ["postgresql", "temporal", "temporal-ui", "node-1", "node-2", "node-3", "prometheus", "grafana"]
    for name in wanted:
        if name not in services:
            problems.append(f"service {name} is missing")
    nodes = [n for n in services if n.startswith("node-")]
    images = {services[n].get("image") for n in nodes}
    builds = {json.dumps(services[n].get("build"), sort_keys=True) for n in nodes}
    if len(images) != 1 or len(builds) != 1:
        problems.append(f"nodes must come from one image: {images} {builds}")
    for n in nodes:
        cmd = services[n].get("command", [])
        if n not in cmd:
            problems.append(f"{n}: its command must set --node-id {n}")
    # Whoever reaches Temporal reads (encrypted) histories and can signal workflows: its ports are
    # published on loopback only, and every node encrypts what it stores there.
    for name in ["temporal", "temporal-ui"]:
        for port in services.get(name, {}).get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name} publishes {port} beyond loopback")
    for n in nodes:
        if "ORRERY_PAYLOAD_KEYS" not in (services[n].get("environment") or {}):
            problems.append(f"{n}: ORRERY_PAYLOAD_KEYS is not set (payload encryption)")
    if "postgres" not in json.dumps(services.get("temporal", {})).lower():
        problems.append("temporal must persist to PostgreSQL")

    # Every file a service mounts from the repository exists.
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("./") and not os.path.exists(os.path.join(root, src)):
                problems.append(f"{name}: mounts {src}, which does not exist")
    for name in services:
        for dep in services[name].get("depends_on", []):
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep}")

    with open(os.path.join(root, "deploy/prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    targets = [t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    for t in targets:
        host = t.split(":")[0]
        if host not in services:
            problems.append(f"prometheus scrapes {t}, which is not a compose service")
    for n in nodes:
        if f"{n}:8080" not in targets:
            problems.append(f"prometheus does not scrape {n}")

    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("### Metrics"):]
    section = section[: section.find("\n#", 4)]
    documented = set(re.findall(r"`(orrery_[a-z_]+)`", section))
    with open(os.path.join(root, "deploy/grafana/orrery.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    if len(exprs) < 10:
        problems.append(f"the dashboard has only {len(exprs)} queries")
    used = set()
    for e in exprs:
        for m in re.findall(r"\b(orrery_[a-z_]+)", e):
            used.add(re.sub(r"_(bucket|sum|count)$", "", m))
    for m in sorted(used - documented):
        problems.append(f"the dashboard uses {m}, which the README does not document")
    ds = set()
    for p in dash["panels"]:
        ds.add(p["datasource"]["uid"])
    for prov in ["datasources/prometheus.yml", "dashboards/orrery.yml"]:
        path = os.path.join(root, "deploy/grafana/provisioning", prov)
        with open(path) as f:
            doc = yaml.safe_load(f)
        if prov.startswith("datasources"):
            uids = {d["uid"] for d in doc["datasources"]}
            if not ds <= uids:
                problems.append(f"the dashboard's datasources {ds} are not provisioned ({uids})")

    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"compose ok: {len(services)} services, {len(exprs)} dashboard queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
