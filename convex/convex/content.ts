// What a person would read for a WhatsApp message, whatever its type (docs/webhook.md §4,
// §7.8). Pure; the same rules as services/message_content.py, and both replay the
// contract corpus.
import { cleanText, dict, first, get, text, type Dict } from "./pyCompat";

/** `message.type`, else the v1 `message.message_type`, else `text` (§7.8). */
export function messageKind(message: Dict): string {
  return first(get(message, "type"), get(message, "message_type")) ?? "text";
}

/** The message's readable text, cleaned. */
export function readableContent(message: Dict): string {
  return cleanText(describe(message));
}

function capitalizeFirst(kind: string): string {
  const firstPoint = kind.codePointAt(0);
  if (firstPoint === undefined) return kind;
  const head = String.fromCodePoint(firstPoint);
  return head.toUpperCase() + kind.slice(head.length);
}

/** `[Label: value]`, or `[Label]` without a value. */
function labelled(label: string, value: string | null): string {
  return value !== null ? `[${label}: ${value}]` : `[${label}]`;
}

function describe(message: Dict): string {
  const kind = messageKind(message);
  const part = dict(get(message, kind));
  const kapso = dict(get(message, "kapso"));
  if (kind === "text") {
    return first(get(part, "body"), get(kapso, "content"), get(message, "content")) ?? "";
  }
  if ((kind === "image" || kind === "video" || kind === "document") && text(get(part, "caption")) !== null) {
    return get(part, "caption") as string;
  }
  if (kind === "audio") {
    const transcript = get(kapso, "transcript");
    return first(transcript, get(dict(transcript), "text"), get(kapso, "content")) ?? "[Audio]";
  }
  return describeLabelled(kind, part);
}

/** The types whose text is a label, or one field of their own part. */
function describeLabelled(kind: string, part: Dict): string {
  const field = (name: string) => text(get(part, name));
  switch (kind) {
    case "document":
      return labelled("Document", field("filename"));
    case "location":
      return labelled("Location", field("name"));
    case "reaction":
      return labelled("Reaction", field("emoji"));
    case "template":
      return labelled("Template", field("name"));
    case "interactive":
      return (
        first(
          get(dict(get(part, "button_reply")), "title"),
          get(dict(get(part, "list_reply")), "title"),
          get(dict(get(part, "nfm_reply")), "body"), // a WhatsApp Flow's reply
        ) ?? "[Interactive]"
      );
    case "order":
      return field("text") ?? "[Order]";
    case "button":
      return field("text") ?? "[Button]";
    case "system":
      return field("body") ?? "[System]";
    case "contacts":
      return "[Contact]";
    default:
      return `[${capitalizeFirst(kind)}]`;
  }
}
