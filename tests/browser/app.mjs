// A browser client of pgqueue through the JS SDK, as a web app would use it.
//
// First load: create a thread, stream a run of graph "chat" with
// streamMode "messages-tuple", and append each token to #tokens. The ids go
// to sessionStorage, which outlives a reload of the tab (and nothing else),
// the way an app rejoins the run a reload cut it off from.
// After a reload: rejoin that run from its first event (lastEventId "-1"),
// append the replayed tokens to #replay, and list the graph's threads.
//
// The run id is kept twice: from the stream's metadata event, and from
// onRunCreated, which reads the response's Content-Location header (as
// useStream's reconnectOnMount does). Across origins a script sees that
// header only if the server exposes it, so the test compares the two.
//
// #status's data-phase is what the test waits on: "streamed", "rejoined" or
// "failed" (then #error has the error's name and message).
import { Client } from "@langchain/langgraph-sdk";

const STORED = "pgqueue-browser-test:run";
const api = new URLSearchParams(location.search).get("api");
const client = new Client({
  apiUrl: api,
  // null: no key from the environment (a browser has none to look in).
  apiKey: null,
  // No retries: a refused call shows on the page at once, not after backoff.
  callerOptions: { maxRetries: 0 },
});

const status = document.getElementById("status");

function setPhase(phase) {
  status.dataset.phase = phase;
  status.textContent = phase;
}

// One span per token, so the test can tell a streamed reply (many tokens)
// from one that came whole.
function appendToken(container, content) {
  const span = document.createElement("span");
  span.className = "token";
  span.textContent = content;
  container.append(span);
}

// Tokens of a "messages-tuple" stream: "messages" events carry
// [message chunk, metadata]; "error" events end the stream with the run's error.
async function render(stream, container, onMetadata) {
  for await (const part of stream) {
    if (part.event === "metadata") onMetadata?.(part.data);
    else if (part.event === "messages") appendToken(container, part.data[0].content);
    else if (part.event === "error") throw new Error(`run error: ${JSON.stringify(part.data)}`);
  }
}

async function firstLoad() {
  const thread = await client.threads.create();
  let createdRunId = null;
  const input = { messages: [{ role: "user", content: "hi" }] };
  const stream = client.runs.stream(thread.thread_id, "chat", {
    input,
    streamMode: "messages-tuple",
    // Keep the run's events for a later join (the LangGraph platform only
    // stores them for resumable streams), and let the run finish if the
    // page goes away mid-stream.
    streamResumable: true,
    onDisconnect: "continue",
    onRunCreated: ({ run_id }) => {
      createdRunId = run_id;
    },
  });
  await render(stream, document.getElementById("tokens"), (meta) => {
    sessionStorage.setItem(
      STORED,
      JSON.stringify({ threadId: thread.thread_id, runId: meta.run_id, createdRunId }),
    );
  });
  if (!sessionStorage.getItem(STORED)) throw new Error("the stream had no metadata event");
  setPhase("streamed");
}

async function afterReload({ threadId, runId }) {
  const replay = client.runs.joinStream(threadId, runId, { lastEventId: "-1" });
  await render(replay, document.getElementById("replay"));
  const threads = await client.threads.search({ metadata: { graph_id: "chat" }, limit: 100 });
  const list = document.getElementById("threads");
  for (const thread of threads) {
    const item = document.createElement("li");
    item.textContent = thread.thread_id;
    list.append(item);
  }
  setPhase("rejoined");
}

async function main() {
  const stored = sessionStorage.getItem(STORED);
  try {
    if (stored) await afterReload(JSON.parse(stored));
    else await firstLoad();
  } catch (error) {
    document.getElementById("error").textContent = `${error.name}: ${error.message}`;
    setPhase("failed");
  }
}

main();
