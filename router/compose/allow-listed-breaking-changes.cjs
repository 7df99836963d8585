// A graphql-inspector diff rule (`graphql-inspector diff OLD NEW --rule <this file>`): breaking
// changes listed in the allow-list file (ADX_SCHEMA_ALLOW_LIST, schema/breaking-changes-allowed.txt)
// are reported as dangerous instead of breaking, so only unlisted ones fail the diff.
//
// Allow-list lines: `CHANGE_TYPE coordinate   # why` (e.g. `FIELD_REMOVED Query.legacy  # unused`).
// For every breaking change NOT listed, the line that would allow it is printed to stderr after
// the marker `ALLOW-LIST-ENTRY: ` so `adx schema check` can show exactly what to add.
const fs = require("node:fs");

function entryOf(change) {
  return `${change.type} ${change.path ?? "-"}`;
}

function readAllowList(file) {
  if (!file || !fs.existsSync(file)) return new Set();
  const entries = new Set();
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/#.*$/, "").trim().split(/\s+/).join(" ");
    if (line) entries.add(line);
  }
  return entries;
}

module.exports = function allowListedBreakingChanges({ changes }) {
  const allowed = readAllowList(process.env.ADX_SCHEMA_ALLOW_LIST);
  return changes.map((change) => {
    if (change.criticality.level !== "BREAKING") return change;
    const entry = entryOf(change);
    if (allowed.has(entry)) {
      return {
        ...change,
        message: `${change.message} (allowed: ${entry})`,
        criticality: { ...change.criticality, level: "DANGEROUS", reason: "allow-listed" },
      };
    }
    process.stderr.write(`ALLOW-LIST-ENTRY: ${entry}\n`);
    return change;
  });
};
module.exports.default = module.exports;
