// Values of Kapso events (docs/webhook.md §3, §7.1, §7.7): identifiers, BSUIDs, times,
// failures and usernames, checked and converted as services/kapso.py and
// services/webhook_judge.py do. Pure functions, no Convex APIs.
import { RULES } from "./contract";
import type { FailureError } from "./kapsoEvents";
import { PLAIN_NUMBERS, type NumberForms } from "./jsonBody";
import {
  cleanName,
  cleanText,
  codePointLength,
  dict,
  get,
  list,
  LONE_SURROGATE,
  PY_BLANK,
  text,
  type Dict,
} from "./pyCompat";
import { codePointPrefix } from "./summary";

/** 1..`maxLength` code points, not blank, no NUL, no unpaired surrogate (§3). */
export function isValidIdentifier(value: string | null, maxLength: number = RULES.maxIdLength): value is string {
  // Checked in UTF-16 units first: more than 2×max units is more than max code points.
  if (value === null || value.length === 0 || value.length > 2 * maxLength) return false;
  return (
    codePointLength(value) <= maxLength &&
    !PY_BLANK.test(value) &&
    !value.includes("\u0000") &&
    !LONE_SURROGATE.test(value)
  );
}

/** A BSUID (§7.1): `ID.13491208655302741918`. The whole string must match, as Python's fullmatch. */
export function isValidBsuid(value: string): boolean {
  return RULES.bsuidPattern.test(value);
}

/** A parent BSUID (§7.1): `ID.ENT.11815799212886844830`. */
export function isValidParentBsuid(value: string): boolean {
  return RULES.parentBsuidPattern.test(value);
}

// §3: optional sign, digits, optional fraction, optional exponent, ASCII
// whitespace around (services/webhook_judge.py `_DECIMAL`).
const DECIMAL = /^[ \t\n\r\f\v]*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*$/;

/** Python's round() for a float: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The §3 range: from min_timestamp_seconds to `nowMs` + max_future_seconds, inclusive. */
function inRange(ms: number, nowMs: number): boolean {
  return ms >= RULES.minTimestampSeconds * 1000 && ms <= nowMs + RULES.maxFutureSeconds * 1000;
}

/**
 * Unix seconds (a JSON number or a decimal string) as milliseconds, half to
 * even; null unless between min_timestamp_seconds and `nowMs` +
 * max_future_seconds (§3). IEEE doubles, as Python's float().
 */
export function timestampMs(value: unknown, nowMs: number): number | null {
  let seconds: number;
  if (typeof value === "number") {
    seconds = value;
  } else if (typeof value === "string") {
    if (!DECIMAL.test(value)) return null;
    seconds = Number(value.trim());
  } else {
    return null; // booleans, null, lists, objects
  }
  if (!Number.isFinite(seconds) || seconds < RULES.minTimestampSeconds) return null;
  if (seconds * 1000 > nowMs + RULES.maxFutureSeconds * 1000) return null;
  return roundHalfEven(seconds * 1000);
}

// §7.7: `YYYY-MM-DDTHH:MM:SS[.f…]` then `Z` or `±HH:MM`; ASCII digits only.
const ISO_TIME =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Offset minutes east of UTC, or null when hours > 23 or minutes > 59 (not a valid offset). */
function offsetMinutes(zone: string): number | null {
  if (zone === "Z") return 0;
  const hours = Number(zone.slice(1, 3));
  const minutes = Number(zone.slice(4, 6));
  if (hours > 23 || minutes > 59) return null;
  return (zone[0] === "-" ? -1 : 1) * (hours * 60 + minutes);
}

/**
 * An ISO 8601 time of a conversation event (§7.7) as milliseconds since the epoch: a
 * calendar-valid date and time, the fraction cut to milliseconds, the offset applied;
 * null when malformed or outside the §3 range.
 */
export function isoTimeMs(value: string | null, nowMs: number): number | null {
  const m = value === null ? null : ISO_TIME.exec(value);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const dateValid = year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
  const offset = offsetMinutes(m[8]);
  if (!dateValid || hour > 23 || minute > 59 || second > 59 || offset === null) return null;
  const millis = Number((m[7] ?? "").slice(0, 3).padEnd(3, "0"));
  // setUTCFullYear: Date.UTC would read years 0-99 as 1900-1999.
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  at.setUTCHours(hour, minute, second, millis);
  const ms = at.getTime() - offset * 60_000;
  return inRange(ms, nowMs) ? ms : null;
}

// ---------------------------------------------------------------------------
// Failures (§7.7)

const MAX_SAFE_MAGNITUDE = 2 ** 53;

/**
 * An error code as kept: a JSON integer (not a boolean, not written as `1.0`) below
 * 2^53 in magnitude as its decimal text, or a valid identifier string as sent.
 * NUL and unpaired surrogates make a string code absent: neither backend can store them.
 */
function errorCode(entry: Dict, numbers: NumberForms): string | null {
  const code = get(entry, "code");
  if (typeof code === "number") {
    const integer = Number.isInteger(code) && Math.abs(code) < MAX_SAFE_MAGNITUDE && !numbers(entry, "code");
    return integer ? String(code) : null;
  }
  return typeof code === "string" && isValidIdentifier(code) ? code : null;
}

/** The first entry of an `errors` list: its code, and its title cleaned and cut to max_error_title_length. */
export function failureError(errors: unknown, numbers: NumberForms = PLAIN_NUMBERS): FailureError {
  const all = list(errors);
  const entry = dict(all.length > 0 ? all[0] : undefined);
  const title = text(get(entry, "title"));
  return {
    code: errorCode(entry, numbers),
    title: title === null ? null : codePointPrefix(cleanText(title), RULES.maxErrorTitleLength),
  };
}

/** The username of §7.1: cleaned, non-blank, at most max_id_length code points. */
export function username(value: string | null): string | null {
  const cleaned = cleanName(value);
  return cleaned !== null && codePointLength(cleaned) <= RULES.maxIdLength ? cleaned : null;
}
