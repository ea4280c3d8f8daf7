// The shared phone vectors (contract/phone_vectors.json), also run by
// tests/test_phones.py against Python's phonenumbers: one rule everywhere.
import { describe, expect, test } from "vitest";
import vectorFile from "../../contract/phone_vectors.json";
import { defaultRegion, normalizePhone } from "../convex/phones";

type Vector = { input: string; region: string; e164: string | null };
const vectors = vectorFile.vectors as Vector[];

describe("phone vectors", () => {
  test("the vector file is not empty", () => {
    expect(vectors.length).toBeGreaterThan(30);
  });

  test.each(vectors.map((v) => [JSON.stringify(v.input), v.region, v] as const))("%s in %s", (_input, _region, v) => {
    expect(normalizePhone(v.input, v.region)).toBe(v.e164);
  });
});

describe("phone details (expected values from Python phonenumbers 9.0.43)", () => {
  test.each([
    // Local-only lengths count as possible in phonenumbers; libphonenumber-js
    // alone would refuse these.
    ["0812345", "ID", "+620812345"], // the national prefix stays: stripping it leaves a local-only length
    ["555 1234", "US", "+15551234"], // "+5551234" is not possible; national 7 digits are local-only
    ["+1 555 1234", "ID", "+15551234"],
    // Not viable for phonenumbers: a "+" after the digits started, too few digits after "+".
    ["+62 812+3456 7890", "ID", null],
    ["++62 812 3456 7890", "ID", "+6281234567890"],
    ["+12", "ID", null],
    ["+62 812 3456 7890 (", "ID", "+6281234567890"],
    ["001", "ID", null],
    // National prefixes read with the metadata's rules for parsing: a carrier
    // code (BR), a transform rule (AR "15" mobile, GG local numbers), none (IT).
    ["0 15 11 2345 6789", "BR", "+551123456789"],
    ["011 15 2345-6789", "AR", "+5491123456789"],
    ["+54 011 15 2345 6789", "ID", "+5491123456789"],
    ["781234", "GG", "+441481781234"],
    ["+44 (0) 1481 781234", "ID", "+441481781234"],
    ["06 1234 5678", "IT", "+390612345678"],
    // The input limit is 80 code points before stripping, 64 after.
    [" ".repeat(17) + "+6281234567890", "ID", "+6281234567890"],
    [" ".repeat(67) + "+6281234567890", "ID", null],
    ["\u3000+6281234567890\u0085", "ID", "+6281234567890"], // Python's str.strip() whitespace
    ["\ufeff+6281234567890", "ID", null], // not whitespace to Python
  ])("%j in %s", (input, region, e164) => {
    expect(normalizePhone(input, region)).toBe(e164);
  });

  test("an unknown region reads international numbers only", () => {
    expect(normalizePhone("+6281234567890", "XX")).toBe("+6281234567890");
    expect(normalizePhone("081234567890", "XX")).toBeNull();
  });

  test("DEFAULT_REGION comes from the environment, ID when unset", ({ onTestFinished }) => {
    const before = process.env.DEFAULT_REGION;
    onTestFinished(() => {
      if (before === undefined) delete process.env.DEFAULT_REGION;
      else process.env.DEFAULT_REGION = before;
    });
    delete process.env.DEFAULT_REGION;
    expect(defaultRegion()).toBe("ID");
    expect(normalizePhone("07700 900123")).toBe("+627700900123");
    process.env.DEFAULT_REGION = " gb ";
    expect(defaultRegion()).toBe("GB");
    expect(normalizePhone("07700 900123")).toBe("+447700900123");
  });
});
