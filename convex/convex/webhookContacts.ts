// Contacts found, linked, created and merged by BSUID first, phone second
// (docs/webhook.md §7.4-§7.6), inside one ingest call (webhook.ts). Plain code over a
// MutationCtx. The same rules as migrations/0007_ingest_function.sql. Documents written
// before the identity fields existed lack them: undefined reads as null throughout.
import type { Doc, Id } from "./_generated/dataModel";
import type { MutationCtx } from "./_generated/server";
import type { Person } from "./judge";
import { contactByBsuid, contactByPhone, notesOfContact } from "./model";
import type { Conversations } from "./webhookConversations";

type Contact = Doc<"contacts">;

/** The identifiers a contact must end up with after a merge (null: keep what the two have). */
export type Wanted = { phone: string | null; bsuid: string | null };

/** The fields of a contact that a merge decides. */
export type MergedFields = Pick<
  Contact,
  "name" | "kapso_name" | "email" | "lead_status" | "lead_score" | "tags" | "updated_at" | "phone"
> & { username: string | null; parent_bsuid: string | null; bsuid: string | null };

/** Filled from the newest contact that has them (the legacy import's rule, §7.5). */
const NEWEST_WINS = ["name", "kapso_name", "email", "username", "parent_bsuid"] as const;

function filled(value: string | null | undefined): value is string {
  return value !== null && value !== undefined && value !== "";
}

/**
 * The survivor's fields after a merge (§7.5): the two ordered newest first by
 * updated_at (equal: the merged one first); the first non-empty value of each field
 * (a lead_status of `new`, the webhook's default, counting as empty); the higher
 * lead_score; the union of the tags, each once; the later updated_at; the wanted
 * identifiers, else the survivor's, else the merged one's.
 */
export function mergedFields(survivor: Contact, merged: Contact, wanted: Wanted): MergedFields {
  const newest = merged.updated_at >= survivor.updated_at ? [merged, survivor] : [survivor, merged];
  const pick = (field: (typeof NEWEST_WINS)[number]) => newest.map((c) => c[field]).find(filled) ?? null;
  const tags: string[] = [];
  for (const contact of newest) {
    for (const tag of contact.tags ?? []) if (!tags.includes(tag)) tags.push(tag);
  }
  return {
    name: pick("name"),
    kapso_name: pick("kapso_name"),
    email: pick("email"),
    username: pick("username"),
    parent_bsuid: pick("parent_bsuid"),
    lead_status: newest.map((c) => c.lead_status).find((s) => filled(s) && s !== "new") ?? "new",
    lead_score: Math.max(survivor.lead_score, merged.lead_score),
    tags,
    updated_at: Math.max(survivor.updated_at, merged.updated_at),
    phone: wanted.phone ?? survivor.phone ?? merged.phone ?? null,
    bsuid: wanted.bsuid ?? survivor.bsuid ?? merged.bsuid ?? null,
  };
}

/**
 * Merges two contacts into the one created first (equal: `first`), nothing lost
 * (§7.5): notes and conversation move to the survivor, the merged contact is deleted.
 * Returns the survivor as it now is.
 */
export async function mergeContacts(
  ctx: MutationCtx,
  conversations: Conversations,
  first: Contact,
  second: Contact,
  wanted: Wanted,
): Promise<Contact> {
  const [survivor, merged] = second.created_at < first.created_at ? [second, first] : [first, second];
  await conversations.merge(survivor._id, merged._id);
  for (const note of await notesOfContact(ctx.db, merged._id).collect()) {
    await ctx.db.patch("contactNotes", note._id, { contact_id: survivor._id });
  }
  await ctx.db.delete("contacts", merged._id);
  const fields = mergedFields(survivor, merged, wanted);
  await ctx.db.patch("contacts", survivor._id, fields);
  return { ...survivor, ...fields };
}

/** The contacts holding the person's BSUID and phone (each may be null, or both the same one). */
async function findPair(ctx: MutationCtx, workspace_id: string, person: Person) {
  const byBsuid = person.bsuid === null ? null : await contactByBsuid(ctx.db, workspace_id, person.bsuid);
  const byPhone = person.phone === null ? null : await contactByPhone(ctx.db, workspace_id, person.phone);
  return { byBsuid, byPhone };
}

/**
 * What a message event says about its contact (§7.4): a missing identifier added, and
 * the name, username and parent BSUID when the event has them. updated_at stays, as
 * for the name before identities existed.
 */
async function updateDetails(ctx: MutationCtx, contact: Contact, person: Person, name: string | null): Promise<void> {
  const patch: Partial<Contact> = {};
  if ((contact.phone ?? null) === null && person.phone !== null) patch.phone = person.phone;
  if ((contact.bsuid ?? null) === null && person.bsuid !== null) patch.bsuid = person.bsuid;
  if (name !== null && name !== contact.kapso_name) patch.kapso_name = name;
  if (person.username !== null && person.username !== contact.username) patch.username = person.username;
  if (person.parent_bsuid !== null && person.parent_bsuid !== contact.parent_bsuid) patch.parent_bsuid = person.parent_bsuid;
  if (Object.keys(patch).length > 0) await ctx.db.patch("contacts", contact._id, patch);
}

/**
 * The contact of a message event (§7.4), resolved against what the events before it
 * did: found by BSUID and/or phone (two different ones are merged), linked, or
 * created at the event's time `at`.
 */
export async function contactForMessage(
  ctx: MutationCtx,
  conversations: Conversations,
  workspace_id: string,
  person: Person,
  at: number,
  name: string | null,
): Promise<Id<"contacts">> {
  const { byBsuid, byPhone } = await findPair(ctx, workspace_id, person);
  let contact: Contact;
  if (byBsuid !== null && byPhone !== null && byBsuid._id !== byPhone._id) {
    contact = await mergeContacts(ctx, conversations, byBsuid, byPhone, { phone: person.phone, bsuid: person.bsuid });
  } else if (byBsuid === null && byPhone === null) {
    return await ctx.db.insert("contacts", {
      workspace_id,
      phone: person.phone,
      bsuid: person.bsuid,
      parent_bsuid: person.parent_bsuid,
      username: person.username,
      name: null,
      kapso_name: name,
      email: null,
      lead_status: "new",
      lead_score: 0,
      tags: [],
      created_at: at,
      updated_at: at,
    });
  } else {
    contact = (byBsuid ?? byPhone) as Contact;
  }
  await updateDetails(ctx, contact, person, name);
  return contact._id;
}

/**
 * Moves `field` of `contact` to `value` (§7.6), merging with the contact that holds
 * it (equal created_at: `contact` survives). Returns whether anything changed.
 */
export async function changeIdentifier(
  ctx: MutationCtx,
  conversations: Conversations,
  workspace_id: string,
  contact: Contact,
  field: "phone" | "bsuid",
  value: string,
): Promise<boolean> {
  if ((contact[field] ?? null) === value) return false;
  const holder =
    field === "phone" ? await contactByPhone(ctx.db, workspace_id, value) : await contactByBsuid(ctx.db, workspace_id, value);
  if (holder !== null) {
    const wanted = field === "phone" ? { phone: value, bsuid: null } : { phone: null, bsuid: value };
    await mergeContacts(ctx, conversations, contact, holder, wanted);
  } else {
    await ctx.db.patch("contacts", contact._id, { [field]: value });
  }
  return true;
}
