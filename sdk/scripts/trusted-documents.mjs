// The trusted documents: every document the SDK generates, by the sha256 (hex) of its text, as
// the JSON the router reads in production (only these run there; see router/gateway.config.ts)
// and the client sends ids of (`persistedDocuments: true`). Reads the built SDK (dist/), so run
// it after `tsc -p tsconfig.json`; writes src/generated/trusted-documents.json, or the path given.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

import * as generated from "../dist/generated/graphql.js";

const documents = Object.entries(generated)
  .filter(([name, value]) => name.endsWith("Document") && value instanceof generated.TypedDocumentString)
  .map(([, value]) => value.toString())
  .map((text) => [createHash("sha256").update(text).digest("hex"), text])
  .sort(([a], [b]) => (a < b ? -1 : 1));

const output = process.argv[2] ?? new URL("../src/generated/trusted-documents.json", import.meta.url);
writeFileSync(output, JSON.stringify(Object.fromEntries(documents), null, 2) + "\n");
