"""Rebuild the recorded-shape provider answers in this folder from the real data in ../shared/data.

    python -m tests.data.sources.build_fixtures

The shapes follow each provider's documented responses (see README.md here); the numbers are EIA-930 demand,
net generation and fuel-mix carbon intensity, and CAISO prices, for the hours named in each file. Deterministic:
running it again rewrites identical files.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import shared_data_dir

HERE = Path(__file__).resolve().parent
LBS_PER_MWH_PER_G_PER_KWH = 1 / 0.45359237  # gCO2/kWh -> lbs/MWh (the inverse of the adapter's conversion)

HEAT_WAVE_PEAK = datetime(2022, 9, 7, 1, tzinfo=UTC)  # CISO's 2022 demand peak, 51,104 MW
EIA_HOURS = [HEAT_WAVE_PEAK - timedelta(hours=h) for h in range(8)]  # 2022-09-06T18 .. 2022-09-07T01, newest first
FUELS = ("WND", "SUN", "WAT", "OIL", "NG", "COL", "NUC", "OTH")
NAMES = {
    "CISO": "California Independent System Operator",
    "BPAT": "Bonneville Power Administration",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _demand(data: Path, ba: str) -> dict[datetime, str]:
    return {
        _utc(r["date_time"]): r["demand (MW)"] for r in _rows(data / f"eia930/demand_2020_2024/{ba}_raw_demand.csv.gz")
    }


def _fuelmix(data: Path, ba: str) -> dict[datetime, dict[str, str]]:
    return {_utc(r["timestamp"]): r for r in _rows(data / f"eia930/fuelmix_2022/{ba}_NG_avgCI_2022.csv.gz")}


def _eia_row(period: datetime, ba: str, type_code: str, type_name: str, value: str) -> dict[str, Any]:
    return {
        "period": period.strftime("%Y-%m-%dT%H"),
        "respondent": ba,
        "respondent-name": NAMES.get(ba, ba),
        "type": type_code,
        "type-name": type_name,
        "value": value,
        "value-units": "megawatthours",
    }


def _eia_envelope(rows: list[dict[str, Any]], facets: dict[str, list[str]], start: str) -> dict[str, Any]:
    return {
        "response": {
            "total": str(len(rows)),
            "dateFormat": 'YYYY-MM-DD"T"HH24',
            "frequency": "hourly",
            "data": rows,
            "description": "Hourly demand, day-ahead demand forecast, net generation, and interchange by "
            "balancing authority.  \n    Source: Form EIA-930\n    Product: Hourly Electric Grid Monitor",
        },
        "request": {
            "command": "/v2/electricity/rto/region-data/data/",
            "params": {
                "frequency": "hourly",
                "data": ["value"],
                "facets": facets,
                "start": start,
                "end": None,
                "sort": [{"column": "period", "direction": "desc"}],
                "offset": 0,
                "length": 5000,
            },
        },
        "apiVersion": "2.1.8",
        "ExcelAddInVersion": "2.1.0",
    }


def build_eia_heat_wave(data: Path) -> dict[str, Any]:
    rows = []
    for ba in ("BPAT", "CISO"):
        demand, mix = _demand(data, ba), _fuelmix(data, ba)
        for hour in EIA_HOURS:
            rows.append(_eia_row(hour, ba, "D", "Demand", demand[hour]))
            # EIA-930 net generation is the sum of its by-fuel figures (the balance files add up exactly).
            total = sum(float(mix[hour][fuel]) for fuel in FUELS)
            rows.append(_eia_row(hour, ba, "NG", "Net generation", str(round(total))))
    rows.sort(key=lambda r: (r["period"], r["respondent"], r["type"]), reverse=True)
    facets = {"respondent": ["BPAT", "CISO"], "type": ["D", "NG"]}
    return _eia_envelope(rows, facets, EIA_HOURS[-1].strftime("%Y-%m-%dT%H"))


def build_eia_forecast(data: Path) -> dict[str, Any]:
    peak = datetime(2018, 7, 25, 1, tzinfo=UTC)  # CISO's 2018 peak hour in the forecast file: 45,957 MW
    table = {_utc(r["date_time"]): r for r in _rows(data / "eia930/demand_forecast_2015_2019/CISO.csv.gz")}
    rows = []
    for offset in range(-5, 3):  # day-ahead forecasts exist for hours after "now" too
        hour = peak + timedelta(hours=offset)
        row = table[hour]
        if offset <= 0:
            rows.append(_eia_row(hour, "CISO", "D", "Demand", row["raw demand (MW)"]))
        rows.append(_eia_row(hour, "CISO", "DF", "Day-ahead demand forecast", row["forecast demand (MW)"]))
    rows.sort(key=lambda r: (r["period"], r["type"]), reverse=True)
    facets = {"respondent": ["CISO"], "type": ["D", "DF"]}
    return _eia_envelope(rows, facets, (peak - timedelta(hours=5)).strftime("%Y-%m-%dT%H"))


def _ciso_carbon(data: Path) -> dict[datetime, float]:
    # Gaps in the file (empty cells) are hours outside these fixtures' windows; leave them out.
    return {hour: float(row["avg_CI"]) for hour, row in _fuelmix(data, "CISO").items() if row["avg_CI"]}


def _watttime_meta(units: str, **extra: Any) -> dict[str, Any]:
    return {
        "data_point_period_seconds": 300,
        "region": "CAISO_NORTH",
        "warnings": [],
        "signal_type": "co2_moer",
        "model": {"date": "2023-03-01"},
        "units": units,
        **extra,
    }


def _five_minute_points(carbon: dict[datetime, float], start: datetime, hours: int) -> list[dict[str, Any]]:
    # The real figures are hourly; WattTime's are 5-minute, so each hour's value fills its twelve slots.
    points = []
    for step in range(hours * 12):
        moment = start + timedelta(minutes=5 * step)
        hour = moment.replace(minute=0)
        lbs = round(carbon[hour] * LBS_PER_MWH_PER_G_PER_KWH, 1)
        points.append({"point_time": moment.isoformat(), "value": lbs})
    return points


def build_watttime(data: Path) -> dict[str, dict[str, Any]]:
    carbon = _ciso_carbon(data)
    forecast = {
        "data": _five_minute_points(carbon, HEAT_WAVE_PEAK, 6),
        "meta": _watttime_meta(
            "lbs_co2_per_mwh", generated_at_period_seconds=300, generated_at=HEAT_WAVE_PEAK.isoformat()
        ),
    }
    historical = {
        "data": _five_minute_points(carbon, HEAT_WAVE_PEAK - timedelta(hours=1), 1)[1:]
        + _five_minute_points(carbon, HEAT_WAVE_PEAK, 1)[:1],
        "meta": _watttime_meta("lbs_co2_per_mwh"),
    }
    # The index: where the current value falls among the trailing 30 days' hourly values, 0-100.
    window = [v for hour, v in carbon.items() if HEAT_WAVE_PEAK - timedelta(days=30) < hour <= HEAT_WAVE_PEAK]
    current = carbon[HEAT_WAVE_PEAK]
    percentile = round(100.0 * sum(v < current for v in window) / len(window), 1)
    index = {
        "data": [{"point_time": HEAT_WAVE_PEAK.isoformat(), "value": percentile}],
        "meta": _watttime_meta("percentile"),
    }
    return {"forecast": forecast, "historical": historical, "signal_index": index}


def _em_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_electricitymaps(data: Path) -> dict[str, dict[str, Any]]:
    carbon = _ciso_carbon(data)
    latest = {
        "zone": "US-CAL-CISO",
        "carbonIntensity": round(carbon[HEAT_WAVE_PEAK]),
        "datetime": _em_time(HEAT_WAVE_PEAK),
        "updatedAt": _em_time(HEAT_WAVE_PEAK + timedelta(minutes=47)),
        "createdAt": _em_time(HEAT_WAVE_PEAK - timedelta(days=3)),
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
        "estimationMethod": None,
    }
    forecast = {
        "zone": "US-CAL-CISO",
        "forecast": [
            {
                "carbonIntensity": round(carbon[HEAT_WAVE_PEAK + timedelta(hours=h)]),
                "datetime": _em_time(HEAT_WAVE_PEAK + timedelta(hours=h)),
            }
            for h in range(1, 25)
        ],
        "updatedAt": _em_time(HEAT_WAVE_PEAK + timedelta(minutes=47)),
    }
    return {"latest": latest, "forecast": forecast}


def build_prices_csv(data: Path) -> str:
    start = datetime(2023, 8, 16, 12, tzinfo=UTC)  # the day of CAISO's 2023 price peak (1,045 USD/MWh at 09:00Z)
    rows = _rows(data / "prices_2023/US-CAL-CISO_electricity_prices_2023.csv.gz")
    lines = ["Datetime (UTC),Datetime (Local),Price (USD/MWh)"]
    for row in rows:
        if start <= _utc(row["Datetime (UTC)"]) < start + timedelta(hours=24):
            lines.append(f"{row['Datetime (UTC)']},{row['Datetime (Local)']},{row['Price (USD/MWh)']}")
    return "\n".join(lines) + "\n"


def _write_json(name: str, body: dict[str, Any]) -> None:
    (HERE / name).write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    data = shared_data_dir()
    _write_json("eia_region_data_heat_wave_2022-09-07.json", build_eia_heat_wave(data))
    _write_json("eia_region_data_ciso_forecast_2018-07-25.json", build_eia_forecast(data))
    for name, body in build_watttime(data).items():
        _write_json(f"watttime_{name}_caiso_north_2022-09-07.json", body)
    for name, body in build_electricitymaps(data).items():
        _write_json(f"electricitymaps_{name}_us-cal-ciso_2022-09-07.json", body)
    (HERE / "caiso_np15_prices_2023-08-16.csv").write_text(build_prices_csv(data), encoding="utf-8")


if __name__ == "__main__":
    main()
