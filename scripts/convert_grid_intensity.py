#!/usr/bin/env python3
"""Build data/energy/grid_intensity.csv and data/energy/time_zones.csv from pinned packages.

Inputs, fetched and checked by `./build.sh fetch` (see data/manifest.json):
- CO2.js (`@tgwf/co2` 0.19.0): the annual average grid intensity of each country and
  region, gCO2e/kWh, from Ember's yearly electricity data (the latest year Ember has
  for each country).
- `i18n-iso-countries` 7.14.0: ISO 3166 alpha-2/alpha-3 codes and English and French
  country names.
- `tzdata` 2026.6 (the IANA time zone database): `zone.tab`, the country of each time
  zone, used to guess the user's country.

`--check` rebuilds both files in memory and fails when the committed files differ, so
a test can prove that the committed tables come from the pinned packages.
"""

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "data" / "files" / "grid"
GRID_CSV = ROOT / "data" / "energy" / "grid_intensity.csv"
ZONES_CSV = ROOT / "data" / "energy" / "time_zones.csv"

SOURCE = "Ember yearly electricity data via CO2.js (@tgwf/co2 0.19.0, dist/esm/data/average-intensities.min.js)"
SOURCE_URL = "https://ember-climate.org/data/data-explorer/"
LICENCE = "CC BY-SA 4.0"
YEAR = "latest Ember annual value in @tgwf/co2 0.19.0 (published 2026-08-22)"
RETRIEVED = "2026-12-04"

# Aggregates that CO2.js lists beside the countries, with their names in both languages.
REGIONS = {
    "WORLD": ("World average", "Moyenne mondiale"),
    "AFRICA": ("Africa", "Afrique"),
    "ASIA": ("Asia", "Asie"),
    "ASEAN": ("ASEAN", "ASEAN"),
    "EU": ("European Union", "Union européenne"),
    "EUROPE": ("Europe", "Europe"),
    "G20": ("G20", "G20"),
    "G7": ("G7", "G7"),
    "LATIN AMERICA AND CARIBBEAN": ("Latin America and Caribbean", "Amérique latine et Caraïbes"),
    "MIDDLE EAST": ("Middle East", "Moyen-Orient"),
    "NORTH AMERICA": ("North America", "Amérique du Nord"),
    "OCEANIA": ("Oceania", "Océanie"),
    "OECD": ("OECD", "OCDE"),
}
# Kosovo: CO2.js uses the user-assigned code XKX; i18n-iso-countries lists it as XK.
EXTRA_ALPHA2 = {"XKX": "XK"}


def name_of(entry) -> str:
    return entry[0] if isinstance(entry, list) else entry


def build() -> tuple[str, str]:
    script = (GRID / "average-intensities.min.js").read_text()
    match = re.search(r"const data = (\{.*?\});", script, re.S)
    if not match:
        raise SystemExit("average-intensities.min.js: no `const data = {...}` found; the CO2.js layout changed")
    intensities = json.loads(match.group(1))
    codes = json.loads((GRID / "iso-countries" / "codes.json").read_text())
    alpha2_of = {alpha3: alpha2 for alpha2, alpha3, *_ in codes}
    alpha2_of.update(EXTRA_ALPHA2)
    english = json.loads((GRID / "iso-countries" / "en.json").read_text())["countries"]
    french = json.loads((GRID / "iso-countries" / "fr.json").read_text())["countries"]

    rows = []
    for code, value in intensities.items():
        if code in REGIONS:
            alpha2, (name, name_fr) = "", REGIONS[code]
        elif code in alpha2_of and alpha2_of[code] in english:
            alpha2 = alpha2_of[code]
            name, name_fr = name_of(english[alpha2]), name_of(french[alpha2])
        else:
            raise SystemExit(f"CO2.js code {code!r} has no country name; add it to REGIONS or EXTRA_ALPHA2")
        rows.append((code, alpha2, name, name_fr, value))
    # World first (the fallback), then the regions, then countries by English name.
    rows.sort(key=lambda r: (r[0] != "WORLD", r[1] != "", r[2]))

    grid = io.StringIO()
    writer = csv.writer(grid, lineterminator="\n")
    writer.writerow(["code", "alpha2", "name", "name_fr", "g_co2e_per_kwh", "year", "source",
                     "source_url", "licence", "retrieved"])
    for code, alpha2, name, name_fr, value in rows:
        writer.writerow([code, alpha2, name, name_fr, value, YEAR, SOURCE, SOURCE_URL, LICENCE, RETRIEVED])

    zones = io.StringIO()
    writer = csv.writer(zones, lineterminator="\n")
    writer.writerow(["time_zone", "alpha2"])
    for line in (GRID / "zone.tab").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        country, _, zone, *_ = line.split("\t")
        writer.writerow([zone, country])
    return grid.getvalue(), zones.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args()
    grid, zones = build()
    if args.check:
        stale = [path for path, text in ((GRID_CSV, grid), (ZONES_CSV, zones)) if path.read_text() != text]
        if stale:
            names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
            print(f"error: {names} differ from the pinned packages; run scripts/convert_grid_intensity.py", file=sys.stderr)
            return 1
        print("grid tables match the pinned packages")
        return 0
    GRID_CSV.write_text(grid)
    ZONES_CSV.write_text(zones)
    print(f"wrote {GRID_CSV.relative_to(ROOT)} and {ZONES_CSV.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
