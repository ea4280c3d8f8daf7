// Phone numbers to E.164 (docs/contract.md §4), the same rule as services/phones.py
// (Python `phonenumbers`): the lookup action and the webhook both use it, and
// tests/phones.test.ts runs contract/phone_vectors.json against it.
//
// libphonenumber-js ships the same Google metadata as `phonenumbers`, but its
// parser does not decide like `phonenumbers.parse`, so the few steps of that
// parse which digit-only input reaches are done here, on libphonenumber-js's
// metadata (each function names the phonenumbers function it follows):
//  - a national prefix after the calling code ("0" of "+44 (0) 1624 75612")
//    is stripped when what is left has a possible length, not a local-only
//    one, for the calling code's *main* region (GB); libphonenumber-js checks
//    the region the rest's leading digits point to instead (IM, 10 digits
//    only: it keeps the 0; CA for "+1 1 310 1234": it strips the 1);
//  - national input that starts with the region's own calling code ("44
//    (00) 20 7946 0958" in GB) follows phonenumbers' rule for it, including
//    a national prefix stripped once there and once more by the parse;
//  - `phonenumbers.is_possible_number` accepts "local-only" lengths (e.g. a
//    6-digit Indonesian national number); libphonenumber-js drops that data,
//    so the lengths are copied below from phonenumbers' metadata;
//  - `phonenumbers.parse` refuses text that is not a "viable" number (a `+`
//    after the first digit, fewer than 3 digits after a `+`); we check that
//    ourselves and parse digits only.
// The full ("max") metadata: the possible lengths and national number
// patterns must be those of Google's metadata, not the reduced "min" set.
import { isSupportedCountry, Metadata, type CountryCode } from "libphonenumber-js/core";
import metadata from "libphonenumber-js/max/metadata";

/** Longest input read at all (services/phones.py `_MAX_INPUT_LENGTH`). */
const MAX_INPUT_LENGTH = 64;
/** Digits, spaces and + - ( ) . only (services/phones.py `_ALLOWED`). */
const ALLOWED = /^[0-9 +\-().]+$/;
/** Python's str.strip() whitespace (str.isspace), not JavaScript's \s. */
const PY_STRIP = /^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
/**
 * phonenumbers' viability test for text starting with "+", restricted to the
 * allowed characters: a run of "+", then at least 3 digits mixed with
 * punctuation, and no further "+" (trailing punctuation is trimmed first).
 */
const VIABLE_INTERNATIONAL = /^\++(?:[ \-().]*[0-9]){3,}[ \-().0-9]*$/;
/** phonenumbers' `_MIN_LENGTH_FOR_NSN` and `_MAX_LENGTH_FOR_NSN`. */
const MIN_NATIONAL_LENGTH = 2;
const MAX_NATIONAL_LENGTH = 17;

/**
 * Lengths phonenumbers counts as "possible, local only" (the general
 * description's possible_length_local_only in phonenumbers 9.0.43 metadata),
 * by region, or by calling code for a non-geographic plan. Regenerate with:
 *   python -c "import phonenumbers as p; M = p.PhoneMetadata; print({r: list(M.metadata_for_region(r)
 *     .general_desc.possible_length_local_only) for r in sorted(p.SUPPORTED_REGIONS)}, {c: list(
 *     M.metadata_for_nongeo_region(c).general_desc.possible_length_local_only)
 *     for c in p.COUNTRY_CODES_FOR_NON_GEO_REGIONS})"
 * (only the non-empty lists are kept).
 */
const LOCAL_ONLY_LENGTHS: Readonly<Record<string, readonly number[]>> = {
  AF: [7], AG: [7], AI: [7], AL: [5], AM: [5, 6], AR: [6, 7, 8], AS: [7], AT: [3], AZ: [7],
  BA: [6], BB: [7], BG: [4, 5], BM: [7], BO: [7], BS: [7], BT: [6], BY: [5], CN: [5, 6],
  CO: [4, 7], CU: [4, 5], DE: [2, 3], DM: [7], DO: [7], EC: [7], EG: [6, 7], ER: [6], ET: [7],
  GB: [4, 5, 6, 8], GD: [7], GE: [6, 7], GG: [6], GH: [7], GU: [7], HR: [6], HU: [6, 7],
  ID: [5, 6], IE: [5, 6], IM: [6], IN: [6, 7], IQ: [6, 7], IR: [8], JE: [6], JM: [7], KG: [5, 6],
  KH: [6, 7], KM: [4], KN: [7], KP: [6, 7], KR: [3, 4, 7], KY: [7], KZ: [5, 6, 7], LA: [6],
  LC: [7], LK: [7], LY: [7], ME: [6], MG: [7], MK: [6, 7], MM: [5], MN: [4, 5, 6], MP: [7],
  MS: [7], MX: [7, 8], MY: [6, 7], NF: [5], NG: [6, 7], NP: [6, 7], PE: [6, 7], PH: [4, 5, 7],
  PK: [5, 6, 7], PR: [7], PS: [7], PY: [5], RS: [4, 5], RU: [7], SA: [7], SL: [6], SM: [6],
  SX: [7], SY: [6, 7], TC: [7], TJ: [3, 5, 6, 7], TT: [7], UA: [5, 6, 7], UG: [5, 6, 7], US: [7],
  VC: [7], VE: [7], VG: [7], VI: [7], YE: [6], ZM: [6], ZW: [6], "979": [8],
};

/** DEFAULT_REGION as services/config.py reads it: trimmed, upper-case, "ID" when unset. */
export function defaultRegion(): string {
  return (process.env.DEFAULT_REGION ?? "").trim().toUpperCase() || "ID";
}

/** The part of libphonenumber-js's Metadata used here (its typings declare less than it has). */
type MetadataInternals = {
  hasCallingCode(callingCode: string): boolean | undefined;
  selectNumberingPlan(countryOrCallingCode: string): unknown;
  numberingPlan: {
    callingCode(): string;
    IDDPrefix(): string | 0 | undefined;
    nationalPrefixForParsing(): string | 0 | undefined;
    nationalPrefixTransformRule(): string | 0 | undefined;
    nationalNumberPattern(): string;
    possibleLengths(): number[] | undefined;
  };
};
// Used synchronously, one call at a time: selecting a plan and reading it never interleave.
const METADATA = new Metadata(metadata) as unknown as MetadataInternals;

/** What phonenumbers' parse reads of one region's (or non-geographic calling code's) metadata. */
type Plan = {
  callingCode: string;
  /** international_prefix, at the start of the number. */
  idd: RegExp | null;
  /** national_prefix_for_parsing (the national prefix when not given), at the start. */
  nationalPrefix: RegExp | null;
  nationalPrefixTransformRule: string | null;
  /** The general description's national_number_pattern, matching a whole number. */
  pattern: RegExp;
  /** General description's possible lengths, ascending, and its local-only ones. */
  lengths: readonly number[];
  localOnly: readonly number[];
};
const PLANS = new Map<string, Plan>();

/** The plan of a region ("GB"), or of a calling code's main region ("44": GB; "800": non-geographic). */
function plan(regionOrCallingCode: string): Plan {
  let found = PLANS.get(regionOrCallingCode);
  if (found === undefined) {
    METADATA.selectNumberingPlan(regionOrCallingCode);
    const p = METADATA.numberingPlan;
    const callingCode = p.callingCode();
    const region = /^[0-9]+$/.test(regionOrCallingCode)
      ? (metadata.country_calling_codes[callingCode]?.[0] ?? callingCode)
      : regionOrCallingCode;
    const atStart = (source: string | 0 | undefined) => (source ? new RegExp(`^(?:${source})`) : null);
    found = {
      callingCode,
      idd: atStart(p.IDDPrefix()),
      nationalPrefix: atStart(p.nationalPrefixForParsing()),
      nationalPrefixTransformRule: p.nationalPrefixTransformRule() || null,
      pattern: new RegExp(`^(?:${p.nationalNumberPattern()})$`),
      lengths: p.possibleLengths() ?? [],
      localOnly: LOCAL_ONLY_LENGTHS[region] ?? [],
    };
    PLANS.set(regionOrCallingCode, found);
  }
  return found;
}

function isSupportedRegion(region: string): region is CountryCode {
  return /^[A-Z]{2}$/.test(region) && isSupportedCountry(region as CountryCode, metadata);
}

type Fit = "possible" | "local-only" | "too-short" | "too-long" | "invalid-length";

/** phonenumbers `_test_number_length` (any number type) of a national number in `p`. */
function fit(national: string, p: Plan): Fit {
  const n = national.length;
  if (p.localOnly.includes(n)) return "local-only";
  if (p.lengths.length === 0) return "invalid-length";
  if (p.lengths[0] > n) return "too-short";
  if (p.lengths[p.lengths.length - 1] < n) return "too-long";
  return p.lengths.includes(n) ? "possible" : "invalid-length";
}

/**
 * phonenumbers `_maybe_strip_national_prefix_carrier_code`: `national`
 * without its national prefix (and carrier code), or rewritten by the
 * transform rule; unchanged when the prefix does not match, or when the
 * number matched the national number pattern and would no longer.
 */
function stripNationalPrefix(national: string, p: Plan): string {
  if (national === "" || p.nationalPrefix === null) return national;
  const match = p.nationalPrefix.exec(national);
  if (match === null) return national;
  const lastGroup = match.length > 1 ? match[match.length - 1] : undefined;
  const stripped = p.nationalPrefixTransformRule === null || lastGroup === undefined
    ? national.slice(match[0].length)
    : national.replace(p.nationalPrefix, p.nationalPrefixTransformRule);
  return p.pattern.test(national) && !p.pattern.test(stripped) ? national : stripped;
}

/** phonenumbers `_extract_country_code`: the calling code `digits` start with, and the rest. */
function splitCallingCode(digits: string): [string, string] | null {
  if (digits.startsWith("0")) return null;
  for (let i = 1; i <= Math.min(3, digits.length); i++) {
    if (METADATA.hasCallingCode(digits.slice(0, i))) return [digits.slice(0, i), digits.slice(i)];
  }
  return null;
}

/**
 * The end of `phonenumbers.parse` and `is_possible_number`: the national
 * number read with `p`'s metadata, its national prefix stripped when what is
 * left is still long enough, as E.164; null when not possible.
 */
function finish(callingCode: string, national: string, p: Plan): string | null {
  if (national.length < MIN_NATIONAL_LENGTH) return null;
  const stripped = stripNationalPrefix(national, p);
  const strippedFit = fit(stripped, p);
  if (strippedFit === "possible" || strippedFit === "too-long") national = stripped;
  if (national.length > MAX_NATIONAL_LENGTH) return null;
  // is_possible_number reads the calling code's main region (US for +1).
  const possible = fit(national, plan(callingCode));
  return possible === "possible" || possible === "local-only" ? `+${callingCode}${national}` : null;
}

/** `phonenumbers.parse("+" + digits, None)`, then possible: E.164 or null. */
function parseInternational(digits: string): string | null {
  // At least 3 digits after a "+" (viable, and not too short after the "+").
  if (digits.length < 3) return null;
  const split = splitCallingCode(digits);
  return split === null ? null : finish(split[0], split[1], plan(split[0]));
}

/** `phonenumbers.parse(digits, region)`, then possible: E.164 or null. */
function parseNational(digits: string, region: CountryCode | undefined): string | null {
  if (region === undefined || digits.length < MIN_NATIONAL_LENGTH) return null;
  const home = plan(region);
  // _maybe_extract_country_code: the region's international prefix (US
  // "011"), unless a 0 follows it ...
  const idd = home.idd?.exec(digits);
  if (idd && digits[idd[0].length] !== "0") {
    const rest = digits.slice(idd[0].length);
    const split = rest.length > MIN_NATIONAL_LENGTH ? splitCallingCode(rest) : null;
    return split === null ? null : finish(split[0], split[1], plan(split[0]));
  }
  // ... or the region's own calling code, kept when the number does not fit
  // the region without it but does with it (its national prefix stripped),
  // or is too long for it.
  const cc = home.callingCode;
  if (digits.startsWith(cc)) {
    const rest = stripNationalPrefix(digits.slice(cc.length), home);
    if ((!home.pattern.test(digits) && home.pattern.test(rest)) || fit(digits, home) === "too-long") {
      return finish(cc, rest, plan(cc));
    }
  }
  return finish(cc, digits, home);
}

/**
 * `raw` as E.164, or null when it is not a possible phone number.
 *
 * `+…` and `00…` are international, a leading 0 is national, and other
 * digit-only input is read first as international without the `+` (the
 * WhatsApp `wa_id` form), then as national in `region`.
 */
export function normalizePhone(raw: string, region: string = defaultRegion()): string | null {
  // Bounded before any regular expression runs over it; counted in code
  // points like Python's len() (80: the input limit plus room for padding).
  const limit = MAX_INPUT_LENGTH + 16;
  if (raw.length > 2 * limit || [...raw].length > limit) return null;
  const text = raw.replace(PY_STRIP, "");
  if (text === "" || text.length > MAX_INPUT_LENGTH || !ALLOWED.test(text)) return null;
  const digits = text.replace(/[^0-9]/g, "");
  if (digits === "") return null;
  const home = isSupportedRegion(region) ? region : undefined;
  if (text.startsWith("+")) {
    const trimmed = text.replace(/[^0-9]+$/, "");
    return VIABLE_INTERNATIONAL.test(trimmed) ? parseInternational(digits) : null;
  }
  if (digits.startsWith("00")) return parseInternational(digits.slice(2));
  if (digits.startsWith("0")) return parseNational(digits, home);
  return parseInternational(digits) ?? parseNational(digits, home);
}
