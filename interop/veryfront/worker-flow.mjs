// Drive a running shopfloor server with the REAL veryfront npm client.
//
//   node worker-flow.mjs <scenario>
//
// Environment: VF_URL (server origin, no /api suffix), VF_TOKEN (a project token),
// VF_PROJECT (project UUID or slug), VF_IMPL (implementation kind), VF_WORKER_KEY.
// Scenarios:
//   flow        register, heartbeat, claim, renew, record the session, append events (worker
//               client and durable helper), read back, end the session, complete (twice)
//   lease-loss  claim with a 5 s lease, let it lapse: renewal returns null, writes are refused,
//               then the run is claimable again and is completed under the new lease
//   create-run  admit a run with the package's own createConversationAgentRun, claim, complete
// Every reply is parsed by the package's zod schemas (the worker client does it for its own
// calls; the raw append/complete replies are checked against the durable-run schemas too).
// Prints one JSON object with what happened; exits non-zero on any failure.
import { randomUUID } from "node:crypto";
import {
  AppendConversationRunEventsResponseSchema,
  CompleteConversationRunResponseSchema,
  ConversationRunProjectionSchema,
  ExternalAgentWorkerRunSchema,
  appendConversationRunEvents,
  createConversationAgentRun,
  createExternalAgentWorkerClient,
  getConversationRun,
  isCursorMismatchConversationRunAppendError,
  isIgnorableConversationRunAppendError,
} from "veryfront/agent";

const apiUrl = required("VF_URL");
const authToken = required("VF_TOKEN");
const projectReference = required("VF_PROJECT");
const implementationKind = required("VF_IMPL");
const workerKey = required("VF_WORKER_KEY");

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Keep every raw reply so the ones the worker client does not validate can be checked too.
const replies = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const text = await response.clone().text();
  replies.push({ method: init?.method ?? "GET", path: new URL(url).pathname, status: response.status, text });
  return response;
}

function lastReply(suffix) {
  const found = replies.filter((r) => r.path.endsWith(suffix)).at(-1);
  check(found, `a reply for ${suffix}`);
  return JSON.parse(found.text);
}

const client = createExternalAgentWorkerClient({ apiUrl, authToken, fetch: recordingFetch });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function register() {
  return client.registerWorker({
    projectReference,
    implementationKind,
    implementationDisplayName: "shopfloor interop worker",
    workerKey,
    displayName: "interop",
    metadata: { host: "interop", pid: process.pid },
  });
}

async function claimWithin(workerId, leaseDurationSeconds, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const run = await client.claimRun({ workerId, leaseDurationSeconds });
    if (run) return run;
    if (Date.now() > deadline) throw new Error(`no run claimable within ${seconds}s`);
    await sleep(200);
  }
}

async function readRun(run) {
  const response = await fetch(`${apiUrl}/conversations/${run.conversation_id}/runs/${run.run_id}`, {
    headers: { Authorization: `Bearer ${authToken}` },
  });
  check(response.ok, `GET run: HTTP ${response.status}`);
  return response.json();
}

function textEvents(text) {
  const messageId = randomUUID();
  const contentId = `${messageId}:0`;
  return [
    { type: "TEXT_MESSAGE_START", messageId, contentId, role: "assistant" },
    { type: "TEXT_MESSAGE_CONTENT", messageId, contentId, delta: text },
    { type: "TEXT_MESSAGE_END", messageId, contentId },
  ];
}

async function expectThrows(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to be refused");
}

async function flow() {
  const out = {};
  const worker = await register();
  out.worker = worker;
  const beat = await client.heartbeatWorker(worker.id);
  out.heartbeat = beat;

  const run = await claimWithin(worker.id, 30, 10);
  out.claimed = run;
  const renewed = await client.renewLease({ workerId: worker.id, runId: run.run_id, leaseDurationSeconds: 60 });
  check(renewed, "renewal while holding the lease returns the run");
  out.renewed = renewed;

  const sessionKey = `sess-${randomUUID()}`;
  out.session = await client.recordSession({
    workerId: worker.id,
    runId: run.run_id,
    sessionKey,
    status: "active",
    metadata: { pid: process.pid },
  });

  await client.appendRunEvents({
    conversationId: run.conversation_id,
    runId: run.run_id,
    expectedPreviousExternalEventSequence: renewed.latest_external_event_sequence,
    events: textEvents("Hello from the interop worker."),
  });
  out.append = AppendConversationRunEventsResponseSchema.parse(lastReply("/events"));

  // The durable-run helper parses its reply with the stricter append schema itself.
  out.durableAppend = await appendConversationRunEvents({
    apiUrl,
    authToken,
    conversationId: run.conversation_id,
    runId: run.run_id,
    expectedPreviousExternalEventSequence: out.append.latestExternalEventSequence,
    events: [{ type: "CUSTOM", name: "progress", value: { step: 2 } }],
  });

  const stale = await expectThrows(
    appendConversationRunEvents({
      apiUrl,
      authToken,
      conversationId: run.conversation_id,
      runId: run.run_id,
      expectedPreviousExternalEventSequence: 0,
      events: [{ type: "CUSTOM", name: "stale", value: {} }],
    }),
  );
  out.staleCursor = { status: stale.status, detail: stale.detail, isCursorMismatch: isCursorMismatchConversationRunAppendError(stale) };

  out.projection = await getConversationRun({ apiUrl, authToken, conversationId: run.conversation_id, runId: run.run_id });
  // The same read-back must also satisfy the worker client's own Run schema.
  out.projectionAsWorkerRun = ExternalAgentWorkerRunSchema.parse(await readRun(run));

  out.sessionEnded = await client.recordSession({ workerId: worker.id, runId: run.run_id, sessionKey, status: "completed" });
  await client.completeRun({ runId: run.run_id, status: "completed" });
  out.complete = CompleteConversationRunResponseSchema.parse(lastReply("/complete"));
  await client.completeRun({ runId: run.run_id, status: "completed" });
  out.completeAgain = CompleteConversationRunResponseSchema.parse(lastReply("/complete"));

  const late = await expectThrows(
    appendConversationRunEvents({
      apiUrl,
      authToken,
      conversationId: run.conversation_id,
      runId: run.run_id,
      events: [{ type: "CUSTOM", name: "late", value: {} }],
    }),
  );
  out.afterComplete = { status: late.status, detail: late.detail, isIgnorable: isIgnorableConversationRunAppendError(late) };
  out.nothingLeft = await client.claimRun({ workerId: worker.id, leaseDurationSeconds: 30 });
  return out;
}

async function leaseLoss() {
  const out = {};
  const worker = await register();
  const run = await claimWithin(worker.id, 5, 10);
  out.claimed = run;
  await client.recordSession({ workerId: worker.id, runId: run.run_id, sessionKey: "first", status: "active" });
  await sleep(6000); // the 5 s lease (the protocol's minimum) lapses
  out.renewed = await client.renewLease({ workerId: worker.id, runId: run.run_id, leaseDurationSeconds: 30 });
  const append = await expectThrows(
    client.appendRunEvents({ conversationId: run.conversation_id, runId: run.run_id, events: textEvents("too late") }),
  );
  out.appendRefused = append.message;
  const complete = await expectThrows(client.completeRun({ runId: run.run_id, status: "completed" }));
  out.completeRefused = complete.message;
  const session = await expectThrows(
    client.recordSession({ workerId: worker.id, runId: run.run_id, sessionKey: "first", status: "completed" }),
  );
  out.sessionRefused = session.message;

  const again = await claimWithin(worker.id, 30, 10);
  out.reclaimed = again;
  await client.appendRunEvents({
    conversationId: again.conversation_id,
    runId: again.run_id,
    expectedPreviousExternalEventSequence: again.latest_external_event_sequence,
    events: textEvents("second attempt"),
  });
  await client.completeRun({ runId: again.run_id, status: "failed", terminalErrorCode: "INTEROP_FAILED", terminalErrorMessage: "failed on purpose" });
  out.complete = CompleteConversationRunResponseSchema.parse(lastReply("/complete"));
  return out;
}

async function createRun() {
  const out = {};
  const conversationId = randomUUID();
  out.created = await createConversationAgentRun({
    apiUrl,
    authToken,
    conversationId,
    agentId: "interop-agent",
    implementationKind,
  });
  const worker = await register();
  const run = await claimWithin(worker.id, 30, 10);
  out.claimed = run;
  await client.completeRun({ runId: run.run_id, status: "cancelled" });
  out.complete = CompleteConversationRunResponseSchema.parse(lastReply("/complete"));
  out.projection = ConversationRunProjectionSchema.parse(await readRun(run));
  return out;
}

const scenarios = { flow, "lease-loss": leaseLoss, "create-run": createRun };
const scenario = scenarios[process.argv[2]];
if (!scenario) {
  console.error(`usage: node worker-flow.mjs ${Object.keys(scenarios).join("|")}`);
  process.exit(64);
}
try {
  const result = await scenario();
  process.stdout.write(JSON.stringify({ ok: true, result, replies }) + "\n");
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error), replies }) + "\n");
  process.exit(1);
}
