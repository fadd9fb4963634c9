// Drive a running shopfloor server from the user's side with the REAL veryfront npm client:
// `veryfront/runs` (VeryfrontRunsClient), the conversation, durable-run and input-request
// helpers of `veryfront/agent`, and the live-eval API client of `veryfront/eval/agent-service`.
// A worker (createExternalAgentWorkerClient) claims and works the runs.
//
//   node user-flow.mjs <scenario>
//
// Environment: VF_URL (server origin), VF_TOKEN (a project token), VF_PROJECT (project slug),
// VF_PROJECT_ID (its UUID), VF_IMPL (implementation kind for agent runs).
// Scenarios:
//   runs          createTaskRun (public_id, duplicate, parent), createWorkflowRun,
//                 createEvalRun, knowledge.ingestByUploadIds, get, a worker claims the task
//                 run and appends events, events paged with afterEventId/limit, list with
//                 cursors, cancel (twice), the worker's writes refused after the cancel
//   conversation  create a conversation, post a user message (twice: idempotent), create a
//                 conversation agent run, a worker claims it with the messages as snapshot,
//                 appends, asks for input (the run waits, appends are refused), the person
//                 answers, the run goes on and completes with metadata, and
//                 monitorConversationRunStatus reports it
//   cancel-input  an input request cancelled by the person, then the conversation deleted
//                 (its running run is cancelled)
// Every reply is parsed by the package's own schemas (the clients do it themselves).
// Prints one JSON object with what happened; exits non-zero on any failure.
import { randomUUID } from "node:crypto";
import {
  appendConversationRunEvents,
  createConversationAgentRun,
  createConversationRecord,
  createExternalAgentWorkerClient,
  createInputRequest,
  ensureConversationProjectLink,
  fetchConversationRecord,
  finalizeConversationAgentRun,
  getConversationRun,
  getInputRequest,
  isIgnorableConversationRunAppendError,
  monitorConversationRunStatus,
  persistConversationUserMessage,
} from "veryfront/agent";
import { createLiveEvalApiClient } from "veryfront/eval/agent-service";
import { createRunsClient } from "veryfront/runs";

const apiUrl = required("VF_URL");
const authToken = required("VF_TOKEN");
const projectReference = required("VF_PROJECT");
const projectId = required("VF_PROJECT_ID");
const implementationKind = required("VF_IMPL");

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const replies = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const text = await response.clone().text();
  replies.push({ method: init?.method ?? "GET", path: new URL(url).pathname, status: response.status, text });
  return response;
}

// No retries: a refusal must show at once, not after the client's backoff.
const runs = createRunsClient({ apiUrl, authToken, projectReference, retry: { maxRetries: 0 } });
const worker = createExternalAgentWorkerClient({ apiUrl, authToken, fetch: recordingFetch });
const people = createLiveEvalApiClient({ apiUrl, authToken, projectId, fetch: recordingFetch });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const timeout = { requestTimeoutMs: 15_000 };

async function register(kind) {
  return worker.registerWorker({
    projectReference,
    implementationKind: kind,
    implementationDisplayName: "shopfloor interop worker",
    workerKey: `user-flow-${randomUUID().slice(0, 8)}`,
  });
}

async function claimWithin(workerId, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const run = await worker.claimRun({ workerId, leaseDurationSeconds: 60 });
    if (run) return run;
    if (Date.now() > deadline) throw new Error(`no run claimable within ${seconds}s`);
    await sleep(200);
  }
}

async function expectThrows(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to be refused");
}

function textEvents(text) {
  const messageId = randomUUID();
  return [
    { type: "TEXT_MESSAGE_START", messageId, role: "assistant" },
    { type: "TEXT_MESSAGE_CONTENT", messageId, delta: text },
    { type: "TEXT_MESSAGE_END", messageId },
  ];
}

async function runsScenario() {
  const out = {};
  const publicId = `task_${randomUUID()}`;
  const task = {
    projectId,
    publicId,
    name: "Sync data",
    target: "task:sync-data",
    batchId: "batch-1",
    config: { batchSize: 100 },
    timeoutSeconds: 600,
    backoffLimit: 2,
    runtimeTargetKind: "main_branch",
  };
  out.created = await runs.createTaskRun(task);
  out.duplicate = await runs.createTaskRun(task);
  out.child = await runs.createTaskRun({ projectId, parentRunId: publicId, target: "task:child" });
  out.workflow = await runs.createWorkflowRun({
    projectId,
    workflowId: "wf-1",
    target: "workflow:nightly",
    input: { day: "monday" },
    startMode: "immediate",
  });
  out.eval = await runs.createEvalRun({ projectId, target: "eval:smoke", input: { cases: 3 } });
  out.ingest = await runs.knowledge.ingestByUploadIds({ projectId, uploadIds: [randomUUID()] });
  out.pending = await runs.get(publicId);

  // Task runs go to workers of implementation kind "task", oldest first.
  const taskWorker = await register("task");
  const claimed = await claimWithin(taskWorker.id, 10);
  check(claimed.run_id === publicId, `the oldest task run is claimed first, got ${claimed.run_id}`);
  out.claimed = claimed;
  let sequence = claimed.latest_external_event_sequence;
  for (const text of ["one", "two"]) {
    await worker.appendRunEvents({
      conversationId: claimed.conversation_id,
      runId: claimed.run_id,
      expectedPreviousExternalEventSequence: sequence,
      events: text === "one" ? textEvents(text) : [...textEvents(text).slice(0, 1), { type: "CUSTOM", name: "progress", value: { done: 1 } }],
    });
    sequence += text === "one" ? 3 : 2;
  }
  out.running = await runs.get(publicId);

  // Events, two at a time, after_event_id exclusive.
  out.pages = [];
  let after;
  for (;;) {
    const page = await runs.events(publicId, { afterEventId: after, limit: 2 });
    out.pages.push(page);
    if (!page.page_info.next) break;
    after = Number(page.page_info.next);
  }
  out.afterSix = await runs.events(publicId, { afterEventId: 6 });
  out.all = await runs.events(publicId);

  // The project's runs, newest first, two per page.
  out.listPages = [];
  let cursor;
  for (;;) {
    const page = await runs.list({ cursor, limit: 2 });
    out.listPages.push(page);
    if (!page.page_info.next) break;
    cursor = page.page_info.next;
  }
  out.listByProjectId = await runs.list({ projectReference: projectId, limit: 100 });

  out.cancel = await runs.cancel(publicId);
  out.cancelAgain = await runs.cancel(publicId);
  out.cancelPending = await runs.cancel(out.workflow.run.run_id);
  out.renewAfterCancel = await worker.renewLease({ workerId: taskWorker.id, runId: publicId, leaseDurationSeconds: 30 });
  const late = await expectThrows(
    appendConversationRunEvents({
      apiUrl,
      authToken,
      conversationId: claimed.conversation_id,
      runId: publicId,
      events: [{ type: "CUSTOM", name: "late", value: {} }],
    }),
  );
  out.lateAppend = { status: late.status, detail: late.detail, isIgnorable: isIgnorableConversationRunAppendError(late) };
  const missing = await expectThrows(runs.get("run_does-not-exist"));
  out.missing = { status: missing.status };
  return out;
}

async function conversationScenario() {
  const out = {};
  const conversation = await createConversationRecord({ apiUrl, authToken, body: { title: "Weather" } });
  out.conversation = conversation;
  await ensureConversationProjectLink({ apiUrl, authToken, conversationId: conversation.id, projectId });
  out.fetched = await fetchConversationRecord({ apiUrl, authToken, conversationId: conversation.id });

  const userMessage = { id: `ui-${randomUUID()}`, role: "user", parts: [{ type: "text", text: "What is the weather in Oslo?" }] };
  const persist = () =>
    persistConversationUserMessage({ apiUrl, authToken, conversationId: conversation.id, message: userMessage });
  out.message = await persist();
  out.messageAgain = await persist();

  out.created = await createConversationAgentRun({
    apiUrl,
    authToken,
    conversationId: conversation.id,
    agentId: "weather-agent",
    implementationKind,
    projectId,
  });
  const runId = out.created.runId;

  const agent = await register(implementationKind);
  const run = await claimWithin(agent.id, 10);
  check(run.run_id === runId, "the worker claims the conversation's run");
  out.claimed = run;
  await worker.recordSession({ workerId: agent.id, runId, sessionKey: `s-${randomUUID()}`, status: "active" });
  let sequence = run.latest_external_event_sequence;
  const first = await appendConversationRunEvents({
    apiUrl,
    authToken,
    conversationId: conversation.id,
    runId,
    expectedPreviousExternalEventSequence: sequence,
    events: [
      ...textEvents("Let me ask which units you want."),
      { type: "TOOL_CALL_START", toolCallId: "call-units", toolCallName: "form_input" },
      { type: "TOOL_CALL_END", toolCallId: "call-units" },
    ],
  });
  sequence = first.latestExternalEventSequence;

  // The agent's form_input tool asks the person (the hosted tool's own request helper).
  out.inputRequest = await createInputRequest({
    apiUrl,
    authToken,
    conversationId: conversation.id,
    runId,
    toolCallId: "call-units",
    form: {
      title: "Units",
      description: "How should temperatures be shown?",
      fields: [
        { type: "select", name: "units", label: "Units", required: true, options: [{ value: "c", label: "Celsius" }, { value: "f", label: "Fahrenheit" }] },
        { type: "checkbox", name: "wind", label: "Include wind" },
      ],
      submitLabel: "Go",
    },
    expiresAt: new Date(Date.now() + 5 * 60_000).toISOString(),
  });
  out.waiting = await getConversationRun({ apiUrl, authToken, conversationId: conversation.id, runId });
  out.waitingRun = await runs.get(runId);
  const refused = await expectThrows(
    appendConversationRunEvents({
      apiUrl,
      authToken,
      conversationId: conversation.id,
      runId,
      expectedPreviousExternalEventSequence: sequence,
      events: [{ type: "CUSTOM", name: "while-waiting", value: {} }],
    }),
  );
  out.appendWhileWaiting = { status: refused.status, detail: refused.detail, isIgnorable: isIgnorableConversationRunAppendError(refused) };

  // The person sees the open request and answers it.
  const openId = await people.waitForOpenInputRequest({ conversationId: conversation.id, abortSignal: new AbortController().signal, timeoutMs: 5_000, pollIntervalMs: 100, ...timeout });
  check(openId === out.inputRequest.id, "the open input request is listed");
  await people.submitInputResponse({ conversationId: conversation.id, inputRequestId: openId, values: { units: "c", wind: true }, ...timeout });
  out.answered = await getInputRequest({ apiUrl, authToken, conversationId: conversation.id, inputRequestId: openId });
  out.resumed = await getConversationRun({ apiUrl, authToken, conversationId: conversation.id, runId });

  const monitored = [];
  const monitor = monitorConversationRunStatus({
    apiUrl,
    authToken,
    conversationId: conversation.id,
    runId,
    pollIntervalMs: 50,
    onTerminal: (error) => monitored.push({ status: error.status, name: error.name }),
    onPollError: (error) => monitored.push({ pollError: String(error) }),
  });
  out.afterAnswer = await appendConversationRunEvents({
    apiUrl,
    authToken,
    conversationId: conversation.id,
    runId,
    expectedPreviousExternalEventSequence: sequence,
    events: textEvents("It is 4 degrees Celsius in Oslo."),
  });
  await sleep(200); // the monitor polls a running run a few times
  out.monitoredWhileRunning = [...monitored];
  await finalizeConversationAgentRun({
    apiUrl,
    authToken,
    runId,
    status: "completed",
    provider: "anthropic",
    model: "claude-test",
    usage: { inputTokens: 120, outputTokens: 45 },
    finishReason: "stop",
  });
  await monitor;
  out.monitored = monitored;
  out.completed = await runs.get(runId);
  out.projection = await getConversationRun({ apiUrl, authToken, conversationId: conversation.id, runId });
  out.events = await runs.events(runId, { limit: 100 });
  const messages = await fetch(`${apiUrl}/conversations/${conversation.id}/messages?limit=20`, {
    headers: { Authorization: `Bearer ${authToken}` },
  });
  check(messages.ok, `list messages: HTTP ${messages.status}`);
  out.messages = await messages.json();
  return out;
}

async function cancelInputScenario() {
  const out = {};
  const conversationId = await people.createConversation({ title: "To cancel", ...timeout });
  await persistConversationUserMessage({
    apiUrl,
    authToken,
    conversationId,
    message: { id: `ui-${randomUUID()}`, role: "user", parts: [{ type: "text", text: "Plan a trip" }] },
  });
  const created = await createConversationAgentRun({ apiUrl, authToken, conversationId, agentId: "trip-agent", implementationKind, projectId });
  const agent = await register(implementationKind);
  const run = await claimWithin(agent.id, 10);
  check(run.run_id === created.runId, "the worker claims the run");
  const request = await createInputRequest({
    apiUrl,
    authToken,
    conversationId,
    runId: run.run_id,
    toolCallId: "call-dates",
    form: { title: "Dates", fields: [{ type: "text", name: "from", label: "From" }] },
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
  });
  await people.cancelInputRequest({ conversationId, inputRequestId: request.id, ...timeout });
  out.cancelled = await getInputRequest({ apiUrl, authToken, conversationId, inputRequestId: request.id });
  out.afterCancel = await getConversationRun({ apiUrl, authToken, conversationId, runId: run.run_id });
  out.openAfterCancel = await people.listOpenInputRequests({ conversationId, ...timeout });
  await people.deleteConversation({ conversationId, ...timeout });
  out.runAfterDelete = await runs.get(run.run_id);
  const gone = await expectThrows(fetchConversationRecord({ apiUrl, authToken, conversationId }));
  out.fetchAfterDelete = gone.message;
  await people.deleteConversation({ conversationId, ...timeout }); // 404 is tolerated
  out.renewAfterDelete = await worker.renewLease({ workerId: agent.id, runId: run.run_id, leaseDurationSeconds: 30 });
  return out;
}

const scenarios = { runs: runsScenario, conversation: conversationScenario, "cancel-input": cancelInputScenario };
const scenario = scenarios[process.argv[2]];
if (!scenario) {
  console.error(`usage: node user-flow.mjs ${Object.keys(scenarios).join("|")}`);
  process.exit(64);
}
try {
  const result = await scenario();
  process.stdout.write(JSON.stringify({ ok: true, result, replies }) + "\n");
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error), replies }) + "\n");
  process.exit(1);
}
