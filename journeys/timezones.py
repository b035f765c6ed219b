"""A lead's timezone when it has none: inferred from its country where the country keeps
one local time, else a configured default (pure).

Quiet hours and send windows are judged in the lead's local time. A lead imported without
a `timezone` but with a `country` of one local time gets that country's zone; a lead of a
country spanning several (US, CA, MX, BR, RU, AU, ID, KZ, CL, …) or of no known country
gets the default (`NURTURE_DEFAULT_TIMEZONE` for quiet hours, a send window's own
`default_timezone` for `Wait(send_window=…)`).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# ISO 3166-1 alpha-2 → the zone nearly everyone in the country lives in. Only countries
# with one local time on the mainland: ES (the Canaries are an hour behind) and PT (the
# Azores) are in, countries spanning several offsets are not. Overseas territories have
# their own codes (RE, GF, GL, PR, …).
COUNTRY_TIMEZONES: dict[str, str] = {
    # Europe
    "AD": "Europe/Andorra",
    "AL": "Europe/Tirane",
    "AM": "Asia/Yerevan",
    "AT": "Europe/Vienna",
    "AZ": "Asia/Baku",
    "BA": "Europe/Sarajevo",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "BY": "Europe/Minsk",
    "CH": "Europe/Zurich",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GE": "Asia/Tbilisi",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IS": "Atlantic/Reykjavik",
    "IT": "Europe/Rome",
    "LI": "Europe/Vaduz",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga",
    "MC": "Europe/Monaco",
    "MD": "Europe/Chisinau",
    "ME": "Europe/Podgorica",
    "MK": "Europe/Skopje",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "RS": "Europe/Belgrade",
    "SE": "Europe/Stockholm",
    "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava",
    "SM": "Europe/San_Marino",
    "TR": "Europe/Istanbul",
    "UA": "Europe/Kyiv",
    "VA": "Europe/Vatican",
    # Middle East and Africa
    "AE": "Asia/Dubai",
    "BH": "Asia/Bahrain",
    "CI": "Africa/Abidjan",
    "DZ": "Africa/Algiers",
    "EG": "Africa/Cairo",
    "ET": "Africa/Addis_Ababa",
    "GH": "Africa/Accra",
    "IL": "Asia/Jerusalem",
    "IQ": "Asia/Baghdad",
    "IR": "Asia/Tehran",
    "JO": "Asia/Amman",
    "KE": "Africa/Nairobi",
    "KW": "Asia/Kuwait",
    "LB": "Asia/Beirut",
    "MA": "Africa/Casablanca",
    "NG": "Africa/Lagos",
    "OM": "Asia/Muscat",
    "QA": "Asia/Qatar",
    "RW": "Africa/Kigali",
    "SA": "Asia/Riyadh",
    "SN": "Africa/Dakar",
    "TN": "Africa/Tunis",
    "TZ": "Africa/Dar_es_Salaam",
    "UG": "Africa/Kampala",
    "ZA": "Africa/Johannesburg",
    # Asia and the Pacific
    "BD": "Asia/Dhaka",
    "CN": "Asia/Shanghai",
    "FJ": "Pacific/Fiji",
    "HK": "Asia/Hong_Kong",
    "IN": "Asia/Kolkata",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "LK": "Asia/Colombo",
    "MY": "Asia/Kuala_Lumpur",
    "NP": "Asia/Kathmandu",
    "NZ": "Pacific/Auckland",
    "PH": "Asia/Manila",
    "PK": "Asia/Karachi",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
    "TW": "Asia/Taipei",
    "VN": "Asia/Ho_Chi_Minh",
    # The Americas
    "AR": "America/Argentina/Buenos_Aires",
    "BO": "America/La_Paz",
    "CO": "America/Bogota",
    "CR": "America/Costa_Rica",
    "CU": "America/Havana",
    "DO": "America/Santo_Domingo",
    "EC": "America/Guayaquil",
    "GT": "America/Guatemala",
    "HN": "America/Tegucigalpa",
    "JM": "America/Jamaica",
    "NI": "America/Managua",
    "PA": "America/Panama",
    "PE": "America/Lima",
    "PR": "America/Puerto_Rico",
    "PY": "America/Asuncion",
    "SV": "America/El_Salvador",
    "UY": "America/Montevideo",
    "VE": "America/Caracas",
}

# Codes people write that ISO spells otherwise.
_ALIASES = {"UK": "GB", "EL": "GR"}


def country_timezone(country: str | None) -> str | None:
    """The zone of a country with one local time; None for others and unknown codes."""
    if not country:
        return None
    code = country.strip().upper()
    return COUNTRY_TIMEZONES.get(_ALIASES.get(code, code))


def _valid(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def lead_zone(timezone: str | None, country: str | None, default: str | None = "UTC") -> ZoneInfo:
    """The zone a lead's local time is judged in: its own `timezone` when valid, else its
    country's (one local time), else `default`, else UTC."""
    for name in (timezone, country_timezone(country), default):
        if (zone := _valid(name)) is not None:
            return zone
    return ZoneInfo("UTC")


def is_known_timezone(name: str) -> bool:
    """Whether `name` is an IANA zone this system knows (for validating settings)."""
    return _valid(name) is not None
