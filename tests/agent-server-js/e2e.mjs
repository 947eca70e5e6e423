// End-to-end check of Parley's agent-server API with the official JavaScript client, unchanged.
// Run by tests/Parley.Tests/AgentServer/AgentServerSdkTests.cs: node e2e.mjs <apiUrl> <apiKey> <assistantId>.
// Prints one JSON object (what the client received) on the last line of stdout; the C# test asserts on it.
import { Client } from "@langchain/langgraph-sdk";

const [apiUrl, apiKey, assistantId] = process.argv.slice(2);
const client = new Client({ apiUrl, apiKey, callerOptions: { maxRetries: 0 } });
const result = {};
const deadline = (ms) => AbortSignal.timeout(ms);
const step = (name) => console.error(`[e2e] ${new Date().toISOString()} ${name}`);

step("assistants and thread");
// 1. The assistant and a thread with metadata.
const assistants = await client.assistants.search({ limit: 10 });
result.assistantIds = assistants.map((a) => a.assistant_id);
const thread = await client.threads.create({ metadata: { purpose: "sdk-e2e" } });
result.thread = { id: thread.thread_id, status: thread.status, metadata: thread.metadata };

step("stream a run");
// 2. A streamed run with values and token deltas.
const streamed = [];
let createdRun;
for await (const chunk of client.runs.stream(thread.thread_id, assistantId, {
  input: { messages: [{ role: "user", content: "hi" }] },
  streamMode: ["values", "messages-tuple"],
  onRunCreated: (meta) => { createdRun = meta; },
  signal: deadline(20000),
})) {
  streamed.push({ id: chunk.id, event: chunk.event, data: chunk.data });
}
result.streamed = streamed;
result.onRunCreated = createdRun ?? null;

step("join the thread stream");
// 3. Join the thread stream after the second event of that run: the rest of the run, with no gap and no duplicate.
const resumeAfter = streamed[1].id;
const joined = [];
const stopJoin = new AbortController();
const joinTimer = setTimeout(() => stopJoin.abort(), 20000);
try {
  for await (const chunk of client.threads.joinStream(thread.thread_id, { lastEventId: resumeAfter, streamMode: ["run_modes"], signal: stopJoin.signal })) {
    joined.push({ id: chunk.id, event: chunk.event, data: chunk.data });
    if (chunk.event === "end") break;
  }
} catch (error) {
  if (!stopJoin.signal.aborted) throw error;
}
clearTimeout(joinTimer);
stopJoin.abort(); // the thread stream stays open by design: close the connection
result.resumeAfter = resumeAfter;
result.joined = joined;

step("background run and cancel");
// 4. A background run, cancelled while it runs.
const run = await client.runs.create(thread.thread_id, assistantId, { input: { messages: [{ role: "user", content: "tell me a long story" }] } });
result.backgroundStatus = run.status;
let current = run;
for (let i = 0; i < 200 && current.status !== "running"; i++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  current = await client.runs.get(thread.thread_id, run.run_id);
}
result.statusBeforeCancel = current.status;
await client.runs.cancel(thread.thread_id, run.run_id, true, "interrupt");
result.cancelled = await client.runs.get(thread.thread_id, run.run_id);
result.threadAfterCancel = (await client.threads.get(thread.thread_id)).status;
result.runs = (await client.runs.list(thread.thread_id)).map((r) => ({ run_id: r.run_id, status: r.status }));
result.state = (await client.threads.getState(thread.thread_id)).values;

step("errors");
// 5. Errors arrive as the client's errors.
try {
  await client.threads.get("00000000-0000-4000-8000-000000000000");
  result.unknownThread = "no error";
} catch (error) {
  result.unknownThread = String(error.status ?? error.message);
}

console.log(JSON.stringify(result));
process.exit(0); // do not wait for idle keep-alive sockets
