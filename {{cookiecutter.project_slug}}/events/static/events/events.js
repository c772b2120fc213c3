// The live events panel of the home page: every event published, whatever its name.
//
// It reads GET /events/ with fetch, not EventSource: EventSource hands a named
// event ("order.paid") only to a listener for that name, and a page that shows
// every event cannot know the names in advance. fetch also sees what
// EventSource hides: the status of a refused request, and the comment the
// server writes before it ends a stream. An application that knows its event
// names uses EventSource: `new EventSource("/events/").addEventListener("order.paid", ...)`.
//
// Like EventSource, it sends Last-Event-ID when it reconnects, so the server
// replays what was missed, and first waits the server's `retry` milliseconds.
// Unlike EventSource, which gives up for good after an error status (a 502
// while a proxy's upstream restarts), it always reconnects, doubling the wait
// after each failure up to 30 s, and says why it is not connected: what the
// stream answered, and the checks that /readyz reports failing.
"use strict";
(() => {
  const panel = document.getElementById("events-panel");
  const state = panel.querySelector(".state");
  const problem = panel.querySelector(".problem");
  const log = panel.querySelector(".log");
  const shownLimit = 100;
  const maxRetryDelay = 30000;
  let retryDelay = 3000; // the stream's `retry:` field replaces it
  let lastEventId = "";
  let failures = 0;

  function setState(value) {
    state.dataset.state = value;
    state.textContent = value;
  }

  function add(meta, text) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.className = "meta";
    label.textContent = meta;
    item.append(label, text);
    log.prepend(item);
    while (log.children.length > shownLimit) log.lastElementChild.remove();
  }

  function show(event) {
    // The server could not resume from our last id: what is shown may have gaps.
    if (event.type === "reset") log.replaceChildren();
    add(`${event.id} ${event.type}`, event.data);
  }

  // The lines of a text/event-stream, fed one at a time, as the SSE standard
  // reads them: a blank line dispatches the event, `:` starts a comment.
  function eventParser(onOpen, onComment) {
    let type = "";
    let data = [];
    return (line) => {
      if (line === "") {
        if (data.length) show({ id: lastEventId, type: type || "message", data: data.join("\n") });
        type = "";
        data = [];
        return;
      }
      if (line.startsWith(":")) {
        onComment(line.slice(1).trim());
        return;
      }
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^[0-9]+$/.test(value)) retryDelay = Number(value);
      else if (field === "id" && !value.includes("\0")) {
        lastEventId = value;
        onOpen(); // the server sends an id as soon as it has subscribed us
      }
    };
  }

  // Calls onLine for every line of the body, until the server ends it.
  async function readLines(response, onLine) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A "\r" at the end may be the first half of "\r\n": kept for the next chunk.
      const lines = buffer.split(/\r\n|\r(?!$)|\n/);
      buffer = lines.pop();
      lines.forEach(onLine);
    }
  }

  async function explain(what, delay) {
    const failing = await window.failingChecks(panel.dataset.readyzUrl);
    if (state.dataset.state === "open") return; // reconnected meanwhile
    problem.textContent = `Not connected: ${what}.${failing ? ` /readyz reports ${failing}.` : ""}`
      + ` Retrying in ${Math.round(delay / 1000)} s.`;
    problem.hidden = false;
  }

  async function connect() {
    let opened = false;
    let said = "";
    const onOpen = () => {
      if (opened) return;
      opened = true;
      failures = 0;
      problem.hidden = true;
      setState("open");
    };
    const headers = { Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let what;
    try {
      const response = await fetch(panel.dataset.streamUrl, { headers, cache: "no-store" });
      if (response.ok) {
        await readLines(response, eventParser(onOpen, (comment) => { said = comment; }));
        what = said && !said.startsWith("keep-alive") ? `the server said "${said}"` : "the stream ended";
      } else {
        what = `GET ${panel.dataset.streamUrl} answered HTTP ${response.status}`;
      }
    } catch {
      what = "the connection failed";
    }
    failures += 1;
    const delay = Math.min(retryDelay * 2 ** (failures - 1), maxRetryDelay);
    setState("reconnecting");
    setTimeout(connect, delay);
    await explain(what, delay);
  }

  connect();
})();
