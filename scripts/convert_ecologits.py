#!/usr/bin/env python3
"""Convert the data of the ecologits wheel into data/energy/ecologits/.

src/energy/ecologits.rs reimplements the EcoLogits method for hosted-LLM
requests and reads the files this script writes:

- models.csv: provider, model name, architecture, total and active parameter
  counts in billions (a range when the architecture is not released), the
  deployment figures (tokens per second, time to first token) and the
  warning codes. Aliases from models.json become rows of their own, as
  ecologits' ModelRepository resolves them.
- providers.csv: the datacenter location (electricity mix zone) and PUE that
  the tracers use for each provider, read from PROVIDER_CONFIG_MAP in
  ecologits/tracers/utils.py.
- electricity_mixes.csv: the GWP impact factor of each zone's electricity
  mix, in kgCO2eq/kWh as ecologits stores it.
- source.json: the package, version, wheel SHA-256, licence, conversion date,
  the SHA-256 of each file read from the wheel, row counts, and the
  module-level constants of ecologits/impacts/llm.py, which the Rust unit
  tests compare with their own copies.

The script reads the wheel's files as text and does not import ecologits,
so it needs only the standard library:

    pip download --no-deps -d /tmp/eco ecologits==0.11.3
    mkdir -p /tmp/eco/unzipped
    (cd /tmp/eco/unzipped && unzip -q ../ecologits-0.11.3-py3-none-any.whl)
    python3 scripts/convert_ecologits.py /tmp/eco/unzipped \\
        --wheel /tmp/eco/ecologits-0.11.3-py3-none-any.whl
"""

import argparse
import ast
import base64
import csv
import datetime
import hashlib
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "data" / "energy" / "ecologits"

PACKAGE = "ecologits"
VERSION = "0.11.3"
WHEEL_NAME = f"ecologits-{VERSION}-py3-none-any.whl"
# SHA-256 of the wheel that `pip download ecologits==0.11.3` fetched from PyPI.
WHEEL_SHA256 = "c477b77a95c65abbc0ed475b62708ce64ada871b675df0261f345296b0a6facd"

MODELS_JSON = "ecologits/data/models.json"
MIXES_JSON = "ecologits/data/electricity_mixes.json"
TRACER_UTILS = "ecologits/tracers/utils.py"
LLM_IMPACTS = "ecologits/impacts/llm.py"
DIST_INFO = f"ecologits-{VERSION}.dist-info"

MODEL_COLUMNS = [
    "provider",
    "name",
    "architecture",
    "total_b_min",
    "total_b_max",
    "active_b_min",
    "active_b_max",
    "tps",
    "ttft_s",
    "warnings",
    "alias_of",
]
PROVIDER_COLUMNS = ["provider", "datacenter_location", "pue_min", "pue_max"]
MIX_COLUMNS = ["zone", "gwp_kg_co2eq_per_kwh"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "wheel_dir",
        type=Path,
        help=f"folder where {WHEEL_NAME} was unzipped (contains ecologits/ and {DIST_INFO}/)",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        required=True,
        help=f"the {WHEEL_NAME} file itself, whose SHA-256 must be {WHEEL_SHA256}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"folder to write the CSV files and source.json to (default: {DEFAULT_OUTPUT})",
    )
    return parser.parse_args()


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(wheel_dir: Path) -> dict:
    """Return the wheel's RECORD as {path: urlsafe-base64 SHA-256}."""
    record_path = wheel_dir / DIST_INFO / "RECORD"
    hashes = {}
    with record_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            path, digest = row[0], row[1]
            if digest.startswith("sha256="):
                hashes[path] = digest[len("sha256="):]
    return hashes


def read_checked(wheel_dir: Path, record: dict, relative: str) -> bytes:
    """Read a file of the unzipped wheel and check it against the wheel's RECORD."""
    data = (wheel_dir / relative).read_bytes()
    expected = record.get(relative)
    actual = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if expected != actual:
        sys.exit(
            f"{relative}: SHA-256 {actual} differs from the wheel's RECORD ({expected}); "
            f"unzip {WHEEL_NAME} again into an empty folder"
        )
    return data


def check_version(wheel_dir: Path) -> str:
    """Check the METADATA version and return the licence expression."""
    metadata = (wheel_dir / DIST_INFO / "METADATA").read_text(encoding="utf-8")
    fields = {}
    for line in metadata.splitlines():
        if not line:
            break
        key, _, value = line.partition(": ")
        fields.setdefault(key, value)
    if fields.get("Name") != PACKAGE or fields.get("Version") != VERSION:
        sys.exit(f"{wheel_dir} holds {fields.get('Name')} {fields.get('Version')}, expected {PACKAGE} {VERSION}")
    return fields.get("License-Expression", "")


def format_number(value) -> str:
    """Write an int as an int and a float as its shortest round-trip decimal."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return repr(value)


def bounds(value) -> tuple:
    """Return (min, max) of an ecologits ValueOrRange: a number or {"min": .., "max": ..}."""
    if isinstance(value, dict):
        return value["min"], value["max"]
    return value, value


def model_row(model: dict, name: str, alias_of: str) -> dict:
    architecture = model["architecture"]
    parameters = architecture["parameters"]
    if isinstance(parameters, dict) and "total" in parameters:
        total, active = parameters["total"], parameters["active"]
    else:
        total, active = parameters, parameters
    total_min, total_max = bounds(total)
    active_min, active_max = bounds(active)
    deployment = model.get("deployment") or {}
    return {
        "provider": model["provider"],
        "name": name,
        "architecture": architecture["type"],
        "total_b_min": format_number(total_min),
        "total_b_max": format_number(total_max),
        "active_b_min": format_number(active_min),
        "active_b_max": format_number(active_max),
        "tps": format_number(deployment.get("tps")),
        "ttft_s": format_number(deployment.get("ttft")),
        "warnings": ";".join(model.get("warnings") or []),
        "alias_of": alias_of,
    }


def convert_models(data: dict) -> list:
    rows = []
    by_key = {}
    for model in data["models"]:
        row = model_row(model, model["name"], "")
        rows.append(row)
        by_key[(model["provider"], model["name"])] = model
    for alias in data.get("aliases") or []:
        # In models.json, "alias" names the listed model and "name" the extra name.
        target = by_key[(alias["provider"], alias["alias"])]
        rows.append(model_row(target, alias["name"], alias["alias"]))
    rows.sort(key=lambda row: (row["provider"], row["name"]))
    keys = [(row["provider"], row["name"]) for row in rows]
    if len(set(keys)) != len(keys):
        sys.exit("models.json lists a (provider, name) pair twice")
    return rows


def convert_mixes(data: dict) -> list:
    rows = [
        {"zone": mix["name"], "gwp_kg_co2eq_per_kwh": format_number(mix["gwp"])}
        for mix in data["electricity_mixes"]
    ]
    rows.sort(key=lambda row: row["zone"])
    return rows


def keyword_value(node: ast.expr):
    """Evaluate a number literal or a RangeValue(min=.., max=..) call."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RangeValue":
        keywords = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
        return keywords["min"], keywords["max"]
    value = ast.literal_eval(node)
    return value, value


def convert_providers(source: str) -> list:
    """Read PROVIDER_CONFIG_MAP = {"name": _ProviderConfig(...), ...} from tracers/utils.py."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "PROVIDER_CONFIG_MAP" for target in node.targets
        ):
            config_map = node.value
            break
    else:
        sys.exit(f"{TRACER_UTILS} defines no PROVIDER_CONFIG_MAP; the script needs updating for this version")

    rows = []
    for key, call in zip(config_map.keys, config_map.values):
        keywords = {keyword.arg: keyword.value for keyword in call.keywords}
        pue_min, pue_max = keyword_value(keywords["datacenter_pue"])
        rows.append(
            {
                "provider": ast.literal_eval(key),
                "datacenter_location": ast.literal_eval(keywords["datacenter_location"]),
                "pue_min": format_number(pue_min),
                "pue_max": format_number(pue_max),
            }
        )
    rows.sort(key=lambda row: row["provider"])
    return rows


def evaluate_constant(node: ast.expr):
    """Evaluate a number literal or a product of number literals (3 * 365 * 24 * ...)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return evaluate_constant(node.left) * evaluate_constant(node.right)
    return ast.literal_eval(node)


def read_llm_constants(source: str) -> dict:
    """Read the module-level UPPER_CASE number constants of impacts/llm.py."""
    constants = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                constants[name] = evaluate_constant(node.value)
    return constants


def write_csv(path: Path, columns: list, rows: list) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    args = parse_args()
    wheel_sha256 = sha256_hex(args.wheel)
    if wheel_sha256 != WHEEL_SHA256:
        sys.exit(f"{args.wheel}: SHA-256 {wheel_sha256}, expected {WHEEL_SHA256} for {PACKAGE} {VERSION}")
    licence = check_version(args.wheel_dir)
    record = read_record(args.wheel_dir)

    sources = {}
    for relative in (MODELS_JSON, MIXES_JSON, TRACER_UTILS, LLM_IMPACTS):
        sources[relative] = read_checked(args.wheel_dir, record, relative)

    models = convert_models(json.loads(sources[MODELS_JSON]))
    mixes = convert_mixes(json.loads(sources[MIXES_JSON]))
    providers = convert_providers(sources[TRACER_UTILS].decode("utf-8"))
    constants = read_llm_constants(sources[LLM_IMPACTS].decode("utf-8"))

    args.output.mkdir(parents=True, exist_ok=True)
    write_csv(args.output / "models.csv", MODEL_COLUMNS, models)
    write_csv(args.output / "providers.csv", PROVIDER_COLUMNS, providers)
    write_csv(args.output / "electricity_mixes.csv", MIX_COLUMNS, mixes)

    provenance = {
        "package": PACKAGE,
        "version": VERSION,
        "wheel": WHEEL_NAME,
        "wheel_sha256": wheel_sha256,
        "licence": licence,
        "licence_note": (
            "The CSV files are converted from ecologits' data files and PROVIDER_CONFIG_MAP, "
            "which ecologits distributes under the Mozilla Public License 2.0 "
            "(https://mozilla.org/MPL/2.0/); the same licence applies to them."
        ),
        "homepage": "https://github.com/mlco2/ecologits",
        "converted_on": datetime.date.today().isoformat(),
        "converted_by": "scripts/convert_ecologits.py",
        "source_files_sha256": {
            relative: hashlib.sha256(data).hexdigest() for relative, data in sources.items()
        },
        "outputs": {
            "models.csv": {"rows": len(models), "from": f"{MODELS_JSON} (models and aliases)"},
            "providers.csv": {"rows": len(providers), "from": f"PROVIDER_CONFIG_MAP in {TRACER_UTILS}"},
            "electricity_mixes.csv": {"rows": len(mixes), "from": f"{MIXES_JSON} (gwp field)"},
        },
        "units": {
            "total_b_min, total_b_max, active_b_min, active_b_max": "billions of parameters",
            "tps": "output tokens per second",
            "ttft_s": "seconds",
            "gwp_kg_co2eq_per_kwh": "kgCO2eq per kWh",
        },
        "llm_constants": constants,
    }
    (args.output / "source.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {len(models)} models, {len(providers)} providers and {len(mixes)} electricity mixes "
        f"to {args.output}"
    )


if __name__ == "__main__":
    main()
