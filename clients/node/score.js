// Scores one transaction through IngestService.ScoreTransaction over mutual TLS, from Node.js
// (@grpc/grpc-js): proof that a caller in another language needs only the contracts and a credential.
//
//   node score.js --address 127.0.0.1:PORT --credential ../../var/credentials/scorer
//                 [--image ../../build/image.binpb] [--transaction-id ID] [--server-name localhost]
//
// The contracts come from the descriptor image `make gen` writes (build/image.binpb: our protos and
// everything they import); the credential directory holds ca.pem, cert.pem and key.pem as `fraudctl up`
// issues them. Prints the response as one JSON line; on an error prints {"code": ..., "details": ...}
// and exits 1.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function args(argv) {
  const out = {image: path.join(__dirname, "..", "..", "build", "image.binpb")};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (argv[i + 1] === undefined) throw new Error(`--${key} needs a value`);
    out[key.replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
  }
  for (const required of ["address", "credential"]) {
    if (!out[required]) throw new Error(`--${required} is required`);
  }
  return out;
}

function main() {
  let opts;
  try {
    opts = args(process.argv.slice(2));
  } catch (e) {
    console.error(`score.js: ${e.message}`);
    process.exit(2);
  }
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(opts.image), {
    keepCase: true, longs: String, enums: String, defaults: true,
  });
  const ingest = grpc.loadPackageDefinition(definition).fraud.ingest.v1;
  // Without cert.pem / key.pem the client verifies the server but presents no certificate (refused).
  const read = (name) => {
    const file = path.join(opts.credential, name);
    return fs.existsSync(file) ? fs.readFileSync(file) : null;
  };
  const credentials = grpc.credentials.createSsl(read("ca.pem"), read("key.pem"), read("cert.pem"));
  // Development server certificates name localhost and 127.0.0.1; TLS SNI may not carry an IP address (RFC
  // 6066), so for an IP address the client verifies the certificate against the name "localhost".
  const host = opts.address.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const channelOptions = /^[\d.]+$|:/.test(host) ? {"grpc.ssl_target_name_override": opts.serverName || "localhost"} : {};
  const client = new ingest.IngestService(opts.address, credentials, channelOptions);
  const request = {
    transaction_id: opts.transactionId || `node-${crypto.randomUUID()}`,
    pan: "4000001234567899",
    amount: {amount_minor: "1234", currency: "EUR"},
    event_time: {seconds: String(Math.floor(Date.now() / 1000) - 5), nanos: 0},
    terminal_id: "T-node-1",
    merchant_category_code: "5411",
  };
  const deadline = new Date(Date.now() + 10000);
  client.ScoreTransaction(request, {deadline}, (err, response) => {
    if (err) {
      console.log(JSON.stringify({code: grpc.status[err.code], details: err.details}));
      process.exit(1);
    }
    console.log(JSON.stringify(response));
    client.close();
  });
}

main();
