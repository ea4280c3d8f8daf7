/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `npx convex dev`.
 * @module
 */

import type {
  ApiFromModules,
  FilterApi,
  FunctionReference,
} from "convex/server";
import type * as apiKeys from "../apiKeys.js";
import type * as contacts from "../contacts.js";
import type * as content from "../content.js";
import type * as contract from "../contract.js";
import type * as counts from "../counts.js";
import type * as credentials from "../credentials.js";
import type * as dataset from "../dataset.js";
import type * as datasetRows from "../datasetRows.js";
import type * as follow from "../follow.js";
import type * as followBody from "../followBody.js";
import type * as followContacts from "../followContacts.js";
import type * as followState from "../followState.js";
import type * as followTree from "../followTree.js";
import type * as handlers_follow from "../handlers/follow.js";
import type * as handlers_importRoutes from "../handlers/importRoutes.js";
import type * as handlers_keys from "../handlers/keys.js";
import type * as handlers_lookup from "../handlers/lookup.js";
import type * as handlers_route from "../handlers/route.js";
import type * as handlers_webhook from "../handlers/webhook.js";
import type * as http from "../http.js";
import type * as importData from "../importData.js";
import type * as importPlan from "../importPlan.js";
import type * as ingestPlan from "../ingestPlan.js";
import type * as jsonBody from "../jsonBody.js";
import type * as judge from "../judge.js";
import type * as kapso from "../kapso.js";
import type * as kapsoEvents from "../kapsoEvents.js";
import type * as kapsoMeta from "../kapsoMeta.js";
import type * as kapsoV2 from "../kapsoV2.js";
import type * as kapsoValues from "../kapsoValues.js";
import type * as model from "../model.js";
import type * as phones from "../phones.js";
import type * as pyCompat from "../pyCompat.js";
import type * as summary from "../summary.js";
import type * as transport from "../transport.js";
import type * as webhook from "../webhook.js";
import type * as webhookContacts from "../webhookContacts.js";
import type * as webhookConversations from "../webhookConversations.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  apiKeys: typeof apiKeys;
  contacts: typeof contacts;
  content: typeof content;
  contract: typeof contract;
  counts: typeof counts;
  credentials: typeof credentials;
  dataset: typeof dataset;
  datasetRows: typeof datasetRows;
  follow: typeof follow;
  followBody: typeof followBody;
  followContacts: typeof followContacts;
  followState: typeof followState;
  followTree: typeof followTree;
  "handlers/follow": typeof handlers_follow;
  "handlers/importRoutes": typeof handlers_importRoutes;
  "handlers/keys": typeof handlers_keys;
  "handlers/lookup": typeof handlers_lookup;
  "handlers/route": typeof handlers_route;
  "handlers/webhook": typeof handlers_webhook;
  http: typeof http;
  importData: typeof importData;
  importPlan: typeof importPlan;
  ingestPlan: typeof ingestPlan;
  jsonBody: typeof jsonBody;
  judge: typeof judge;
  kapso: typeof kapso;
  kapsoEvents: typeof kapsoEvents;
  kapsoMeta: typeof kapsoMeta;
  kapsoV2: typeof kapsoV2;
  kapsoValues: typeof kapsoValues;
  model: typeof model;
  phones: typeof phones;
  pyCompat: typeof pyCompat;
  summary: typeof summary;
  transport: typeof transport;
  webhook: typeof webhook;
  webhookContacts: typeof webhookContacts;
  webhookConversations: typeof webhookConversations;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;
