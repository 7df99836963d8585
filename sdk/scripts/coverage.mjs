// Every root field of the public schema (the frontend contract) has an operation document in
// src/documents, so the SDK types and types every contract operation. Exit 1 lists the missing.
import { readFileSync, readdirSync } from "node:fs";
import { buildSchema, parse } from "graphql";

const schema = buildSchema(readFileSync("../schema/public.graphql", "utf8"));
const used = new Set();
for (const file of readdirSync("src/documents").filter((f) => f.endsWith(".graphql"))) {
  const document = parse(readFileSync(`src/documents/${file}`, "utf8"));
  for (const definition of document.definitions) {
    if (definition.kind !== "OperationDefinition") continue;
    const root = { query: "Query", mutation: "Mutation", subscription: "Subscription" }[definition.operation];
    for (const selection of definition.selectionSet.selections) {
      if (selection.kind === "Field") used.add(`${root}.${selection.name.value}`);
    }
  }
}
const missing = [];
for (const root of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
  for (const name of Object.keys(root?.getFields() ?? {})) {
    if (!used.has(`${root.name}.${name}`)) missing.push(`${root.name}.${name}`);
  }
}
if (missing.length) {
  console.error(`No operation document in sdk/src/documents for: ${missing.join(", ")}`);
  console.error("Add one to the subgraph's file there (e.g. src/documents/user.graphql), then `make schema`.");
  process.exit(1);
}
console.log(`sdk: every root field of the public schema has a document (${used.size})`);
