// Checks dumps written by Corridor's Python port with the reference JavaScript library.
// stdin: {"cases": [{"dump": <standard-v1 dump>, "proofs": [[hex...] per value]}]}
// stdout: {"version", "results": [{root, proofs, givenProofsVerify, rebuiltRoot, rebuiltDump}
//          or {error}]}
// Run with NODE_PATH pointing at a node_modules holding @openzeppelin/merkle-tree.
"use strict";
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const pkg = require("@openzeppelin/merkle-tree/package.json");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const results = input.cases.map(({ dump, proofs }) => {
  let tree;
  try {
    tree = StandardMerkleTree.load(dump);
  } catch (e) {
    return { error: `${e.name}: ${e.message}` };
  }
  const values = dump.values.map(v => v.value);
  const rebuilt = StandardMerkleTree.of(values, dump.leafEncoding);
  return {
    root: tree.root,
    proofs: values.map((_, i) => tree.getProof(i)),
    givenProofsVerify: (proofs || []).map((proof, i) =>
      StandardMerkleTree.verify(tree.root, dump.leafEncoding, values[i], proof)),
    rebuiltRoot: rebuilt.root,
    rebuiltDump: rebuilt.dump(),
  };
});
process.stdout.write(JSON.stringify({ version: pkg.version, results }));
