// Phone numbers to E.164 (docs/contract.md §4), the same rule as services/phones.py
// (Python `phonenumbers`): the lookup action and the webhook both use it, and
// tests/phones.test.ts runs contract/phone_vectors.json against it.
//
// libphonenumber-js reads the same Google metadata as `phonenumbers`. Two
// places where it behaves differently are handled here rather than left to it:
//  - `phonenumbers.is_possible_number` accepts "local-only" lengths (e.g. a
//    6-digit Indonesian national number); libphonenumber-js drops that data,
//    so the possibility check below is our own, with the local-only lengths
//    of each calling code's main region copied from phonenumbers' metadata.
//  - `phonenumbers.parse` refuses text that is not a "viable" number (a `+`
//    after the first digit, fewer than 3 digits after a `+`); we check that
//    ourselves and hand libphonenumber-js digits only.
// The full ("max") metadata: the possible lengths per calling code must be
// those of Google's metadata, not the reduced "min" set.
import { isSupportedCountry, Metadata, parsePhoneNumberWithError, type CountryCode } from "libphonenumber-js/core";
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

/**
 * Lengths `phonenumbers.is_possible_number` accepts as "possible, local only"
 * for each calling code's main region (general description's
 * possible_length_local_only in phonenumbers 9.0.43 metadata). Regenerate with:
 *   python -c "from phonenumbers import *; from phonenumbers import PhoneMetadata as M;
 *     print({cc: list(M.metadata_for_region_or_calling_code(cc, region_code_for_country_code(cc))
 *     .general_desc.possible_length_local_only) for cc in COUNTRY_CODE_TO_REGION_CODE})"
 */
const LOCAL_ONLY_LENGTHS: Readonly<Record<string, readonly number[]>> = {
  "1": [7], "7": [7], "20": [6, 7], "36": [6, 7], "43": [3], "44": [4, 5, 6, 8], "49": [2, 3],
  "51": [6, 7], "52": [7, 8], "53": [4, 5], "54": [6, 7, 8], "57": [4, 7], "58": [7], "60": [6, 7],
  "62": [5, 6], "63": [4, 5, 7], "82": [3, 4, 7], "86": [5, 6], "91": [6, 7], "92": [5, 6, 7],
  "93": [7], "94": [7], "95": [5], "98": [8], "218": [7], "232": [6], "233": [7], "234": [6, 7],
  "251": [7], "256": [5, 6, 7], "260": [6], "261": [7], "263": [6], "269": [4], "291": [6],
  "353": [5, 6], "355": [5], "359": [4, 5], "374": [5, 6], "375": [5], "378": [6], "380": [5, 6, 7],
  "381": [4, 5], "382": [6], "385": [6], "387": [6], "389": [6, 7], "591": [7], "593": [7],
  "595": [5], "672": [5], "850": [6, 7], "855": [6, 7], "856": [6], "963": [6, 7], "964": [6, 7],
  "966": [7], "967": [6], "970": [7], "975": [6], "976": [4, 5, 6], "977": [6, 7], "979": [8],
  "992": [3, 5, 6, 7], "994": [7], "995": [6, 7], "996": [5, 6],
};

/** DEFAULT_REGION as services/config.py reads it: trimmed, upper-case, "ID" when unset. */
export function defaultRegion(): string {
  return (process.env.DEFAULT_REGION ?? "").trim().toUpperCase() || "ID";
}

/** The part of libphonenumber-js's Metadata used here (its typings declare less than it has). */
type NumberingPlans = {
  selectNumberingPlan(countryOrCallingCode: string): unknown;
  possibleLengths(): number[] | undefined;
};
// Used synchronously, one call at a time: selecting a plan and reading it never interleave.
const PLANS = new Metadata(metadata) as unknown as NumberingPlans;

function isSupportedRegion(region: string): region is CountryCode {
  return /^[A-Z]{2}$/.test(region) && isSupportedCountry(region as CountryCode, metadata);
}

/** `phonenumbers.is_possible_number`: the length fits the calling code's main region. */
function isPossible(callingCode: string, nationalNumber: string): boolean {
  // Like phonenumbers, the calling code's main region (US for +1), or the
  // non-geographic plan (+800 …).
  PLANS.selectNumberingPlan(callingCode);
  const lengths = PLANS.possibleLengths();
  if (lengths === undefined || lengths.length === 0 || lengths[0] === -1) return false;
  const n = nationalNumber.length;
  return lengths.includes(n) || (LOCAL_ONLY_LENGTHS[callingCode] ?? []).includes(n);
}

/** `+digits` (international) or national `digits` in `region`, as E.164; null when not possible. */
function parse(digitsOrPlus: string, region: CountryCode | undefined): string | null {
  const international = digitsOrPlus.startsWith("+");
  // phonenumbers: at least 3 digits after a "+", at least 2 for a national number.
  if (international ? digitsOrPlus.length < 4 : region === undefined || digitsOrPlus.length < 2) return null;
  try {
    const number = international
      ? parsePhoneNumberWithError(digitsOrPlus, metadata)
      : parsePhoneNumberWithError(digitsOrPlus, { defaultCountry: region }, metadata);
    if (number.ext !== undefined) return null;
    const cc = number.countryCallingCode;
    const national = number.nationalNumber;
    if (!isPossible(cc, national)) return null;
    return `+${cc}${national}`;
  } catch {
    return null; // a ParseError: not a number, invalid country code, too short or long
  }
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
    return VIABLE_INTERNATIONAL.test(trimmed) ? parse("+" + digits, undefined) : null;
  }
  if (digits.startsWith("00")) return parse("+" + digits.slice(2), undefined);
  if (digits.startsWith("0")) return parse(digits, home);
  return parse("+" + digits, undefined) ?? parse(digits, home);
}
