#!/usr/bin/env node
// Compiles Corridor's contracts with the pinned solc-js and writes their artifacts.
//
//   node build.js           compile and write artifacts/<Contract>.json
//   node build.js --check   compile in memory; exit 1 if a committed artifact differs
//
// The artifacts are committed so that running Corridor needs no Node; CI runs --check so a
// source change without a rebuild (or a different compiler) cannot land unnoticed.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname;
const ARTIFACTS_DIR = path.join(ROOT, "artifacts");
const SOLC_VERSION_PINNED = "0.8.37";
// py-evm (the embedded chain) runs up to Prague; solc 0.8.37 defaults to osaka, whose
// opcodes py-evm rejects, so the EVM version is always explicit.
const EVM_VERSION = "prague";
// Contracts to build: source file -> contract name inside it.
const CONTRACTS = [{ source: "SettlementLedger.sol", name: "SettlementLedger" }];
const PINNED_PACKAGES = [
  "solc",
  "@openzeppelin/contracts",
  "@openzeppelin/merkle-tree",
  "@foundry-rs/anvil",
];

const SETTINGS = {
  evmVersion: EVM_VERSION,
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": {
      "*": [
        "abi",
        "evm.bytecode.object",
        "evm.deployedBytecode.object",
        "evm.methodIdentifiers",
        "devdoc",
        "userdoc",
      ],
    },
  },
};

function fail(message) {
  process.stderr.write(`build.js: ${message}\n`);
  process.exit(1);
}

// Every dependency is pinned to an exact version: a range would let `npm install` pick a
// different compiler or library and change the bytecode.
function checkPins() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const deps = { ...(pkg.dependencies || {}), ...(pkg.devDependencies || {}) };
  for (const name of PINNED_PACKAGES) {
    const spec = deps[name];
    if (!spec || !/^\d+\.\d+\.\d+$/.test(spec)) {
      fail(`package.json must pin ${name} to an exact version, found ${spec}`);
    }
  }
  if (deps.solc !== SOLC_VERSION_PINNED) {
    fail(`package.json pins solc ${deps.solc}, build.js expects ${SOLC_VERSION_PINNED}`);
  }
  const compiler = solc.version();
  if (!compiler.startsWith(`${SOLC_VERSION_PINNED}+`)) {
    fail(`installed solc is ${compiler}, expected ${SOLC_VERSION_PINNED}: run npm ci`);
  }
  return compiler;
}

// Resolves imports such as "@openzeppelin/contracts/..." from node_modules only: nothing
// outside this folder can leak into the build.
function findImports(importPath) {
  const candidates = [path.join(ROOT, importPath), path.join(ROOT, "node_modules", importPath)];
  for (const candidate of candidates) {
    const resolved = path.resolve(candidate);
    if (!resolved.startsWith(ROOT + path.sep)) continue;
    if (fs.existsSync(resolved)) return { contents: fs.readFileSync(resolved, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

function compile() {
  const sources = {};
  for (const { source } of CONTRACTS) {
    sources[source] = { content: fs.readFileSync(path.join(ROOT, source), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) process.stderr.write(`${d.formattedMessage || d.message}\n`);
  if (diagnostics.some((d) => d.severity === "error")) fail("compilation failed");
  return output;
}

function artifactsFrom(output, compilerVersion) {
  const artifacts = {};
  for (const { source, name } of CONTRACTS) {
    const contract = output.contracts[source][name];
    const artifact = {
      contractName: name,
      sourceName: source,
      compiler: { name: "solc-js", version: compilerVersion },
      settings: {
        evmVersion: SETTINGS.evmVersion,
        optimizer: SETTINGS.optimizer,
        metadata: SETTINGS.metadata,
      },
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
      methodIdentifiers: contract.evm.methodIdentifiers,
      devdoc: contract.devdoc,
      userdoc: contract.userdoc,
    };
    artifacts[`${name}.json`] = `${JSON.stringify(artifact, null, 2)}\n`;
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes("--check");
  const compilerVersion = checkPins();
  const artifacts = artifactsFrom(compile(), compilerVersion);
  let stale = 0;
  for (const [file, text] of Object.entries(artifacts)) {
    const target = path.join(ARTIFACTS_DIR, file);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : null;
      if (committed !== text) {
        stale += 1;
        process.stderr.write(`build.js: artifacts/${file} differs from a fresh build\n`);
      }
    } else {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote artifacts/${file}\n`);
    }
  }
  if (stale > 0) fail("committed artifacts are stale: run `node build.js` and commit them");
  if (check) process.stdout.write(`artifacts up to date (solc ${compilerVersion}, ${EVM_VERSION})\n`);
}

main();
