// Writes tests/audit/fixtures/oz_merkle_vectors.json: roots, dumps and proofs computed by
// the reference JavaScript library, so the Python port is checked even without Node.
//
//   NODE_PATH=contracts/node_modules node tests/audit/js/make_vectors.js > \
//     tests/audit/fixtures/oz_merkle_vectors.json
"use strict";
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const pkg = require("@openzeppelin/merkle-tree/package.json");

const TRANSFER_V1 = ["uint64", "string", "string", "string", "string", "string", "string",
  "uint256", "uint64"];
const BALANCE_V1 = ["string", "string", "string", "int256", "uint64"];

function transfer(i) {
  const parts = ["p_acme", "p_beta", "p_gamma", "p_fxlp"];
  const cur = ["USD", "PHP", "EUR", "JPY"][i % 4];
  return [String(1000 + i), `tr_${i.toString(16).padStart(8, "0")}`,
    parts[i % 4], `w_${i % 4}_${cur.toLowerCase()}`,
    parts[(i + 1) % 4], `w_${(i + 1) % 4}_${cur.toLowerCase()}`,
    cur, String((i * 7919 + 13) * 100), String(1767225600000 + i * 1000)];
}

const cases = [];
function add(name, values, encoding, opts = {}, multi = []) {
  const tree = StandardMerkleTree.of(values, encoding, opts);
  cases.push({
    name,
    leafEncoding: encoding,
    sortLeaves: opts.sortLeaves ?? true,
    values,
    root: tree.root,
    dump: tree.dump(),
    leafHashes: values.map(v => tree.leafHash(v)),
    proofs: values.map((_, i) => tree.getProof(i)),
    multiProofs: multi.map(indices => ({ indices, ...tree.getMultiProof(indices) })),
    render: tree.render(),
  });
}

add("transfer_v1_7", [0, 1, 2, 3, 4, 5, 6].map(transfer).concat([]), TRANSFER_V1, {},
  [[0, 3, 6], [1], []]);
const unicode = transfer(7);
unicode[1] = "tr_ünïcødé_€_支付_🙂"; unicode[2] = "p_" + "long".repeat(20);
add("transfer_v1_unicode", [unicode, transfer(8), transfer(9)], TRANSFER_V1);
add("transfer_v1_33", Array.from({ length: 33 }, (_, i) => transfer(i)), TRANSFER_V1, {},
  [[0, 1, 2, 31, 32], [5, 17]]);
add("balance_v1_5", [
  ["p_acme", "w_0_usd", "USD", "-120000", "3"],
  ["p_beta", "w_1_usd", "USD", "120000", "3"],
  ["p_fxlp", "w_3_php", "PHP", "0", "3"],
  ["p_gamma", "w_2_eur", "EUR", "-57896044618658097711785492504343953926634992332820282019728792003956564819968", "3"],
  ["p_acme", "w_0_jpy", "JPY", "57896044618658097711785492504343953926634992332820282019728792003956564819967", "3"],
], BALANCE_V1, {}, [[0, 4]]);
add("single", [["1", "only"]], ["uint64", "string"]);
add("two", [["1", "a"], ["2", "b"]], ["uint64", "string"]);
add("mixed_types", Array.from({ length: 9 }, (_, i) => [
  "0x" + (i + 1).toString(16).padStart(40, "0"),
  (BigInt(2) ** BigInt(200 + i)).toString(),
  i % 2 === 0,
  "0x" + (i * 17 + 1).toString(16).padStart(2, "0").repeat(32),
  "0x" + "ab".repeat(i * 5),
  "s".repeat(i * 11),
  String(-128 + i * 31),
  String(255 - i),
]), ["address", "uint256", "bool", "bytes32", "bytes", "string", "int8", "uint8"], {},
  [[0, 8], [2, 3, 4]]);
add("duplicates", [["1", "x"], ["2", "y"], ["1", "x"], ["3", "z"], ["1", "x"]],
  ["uint64", "string"]);
add("unsorted", [0, 1, 2, 3, 4].map(transfer), TRANSFER_V1, { sortLeaves: false }, [[0, 4]]);
add("arrays_and_tuples", [
  [["1", "2", "3"], ["a", "b"], ["0x0000000000000000000000000000000000000001", "7"]],
  [[], ["", "long string over thirty-two bytes ....."], ["0x00000000000000000000000000000000000000ff", "0"]],
  [["115792089237316195423570985008687907853269984665640564039457584007913129639935"], ["c", "d"], ["0x1111111111111111111111111111111111111111", "9"]],
], ["uint256[]", "string[2]", "(address,uint256)"]);

process.stdout.write(JSON.stringify({
  generator: `${pkg.name}@${pkg.version}`,
  node: process.version,
  cases,
}, null, 1) + "\n");
