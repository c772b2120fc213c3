// The background tasks panel of the home page: is a worker running, and the tasks it runs.
//
// Whether a worker runs is the tasks_worker check of /readyz (a heartbeat
// within TASKS_WORKER_LOST_SECONDS), asked on load and every 15 s while the
// page is visible: without a worker, tasks wait in the queue.
//
// With live events (the panel has data-stream-url), every task's progress
// arrives on GET /events/ as `task.progress` {"id", "task", "done", "total",
// "message"}, then `task.finished` {"id", "task", "status"}: one progress bar
// per task id. The event names are known, so EventSource reads the stream: it
// reconnects by itself and resumes with Last-Event-ID. After an error status
// (a 502 while a proxy's upstream restarts) it gives up for good; then a new
// one is opened after a wait that doubles up to 30 s, resuming from the last
// id it saw with `?last_event_id=`. While not connected, the panel says why:
// what the stream answered, and the checks that /readyz reports failing.
"use strict";
(() => {
  const panel = document.getElementById("tasks-panel");
  const { streamUrl, readyzUrl } = panel.dataset;
  const worker = panel.querySelector(".worker");
  const workerCheckEvery = 15000;

  async function checkWorker() {
    if (document.hidden) return;
    try {
      const response = await fetch(readyzUrl, { cache: "no-store" });
      const check = (await response.json()).checks?.tasks_worker;
      if (!check) worker.textContent = "/readyz does not report on workers.";
      else if (check.ok) worker.textContent = "A worker is running.";
      else worker.textContent = `No worker: ${check.error}. Queued tasks wait until one runs.`;
      worker.dataset.ok = Boolean(check?.ok);
    } catch {
      worker.textContent = "Cannot tell whether a worker runs: /readyz does not answer.";
      worker.dataset.ok = false;
    }
  }
  checkWorker();
  setInterval(checkWorker, workerCheckEvery);
  document.addEventListener("visibilitychange", checkWorker);

  if (!streamUrl) return; // no live events: the panel says how to poll instead

  const state = panel.querySelector(".state");
  const problem = panel.querySelector(".problem");
  const list = panel.querySelector(".tasks");
  const shownLimit = 20;
  const maxRetryDelay = 30000;
  const rows = new Map(); // task id -> {item, bar, status}
  let retryDelay = 3000;
  let failures = 0;
  let lastEventId = "";

  function setState(value) {
    state.dataset.state = value;
    state.textContent = value;
  }

  // The row of task `id`, made (at the top of the list) on its first event.
  function row(id, taskName) {
    let found = rows.get(id);
    if (found) return found;
    const item = document.createElement("li");
    item.dataset.taskId = id;
    const label = document.createElement("span");
    label.className = "meta";
    label.textContent = `${id} ${taskName}`;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const status = document.createElement("span");
    status.className = "status";
    item.append(label, bar, " ", status);
    list.prepend(item);
    found = { item, bar, status };
    rows.set(id, found);
    while (list.children.length > shownLimit) {
      rows.delete(list.lastElementChild.dataset.taskId);
      list.lastElementChild.remove();
    }
    return found;
  }

  function read(event) {
    if (event.lastEventId) lastEventId = event.lastEventId;
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  }

  function onProgress(event) {
    const data = read(event);
    if (!data || typeof data.id !== "string") return;
    const { bar, status, item } = row(data.id, data.task);
    if (item.dataset.status) return; // finished: a late progress event changes nothing
    bar.max = Math.max(Number(data.total) || 0, 1);
    bar.value = Math.min(Number(data.done) || 0, bar.max);
    status.textContent = `${data.done}/${data.total} ${data.message || ""}`.trim();
  }

  function onFinished(event) {
    const data = read(event);
    if (!data || typeof data.id !== "string") return;
    const { bar, status, item } = row(data.id, data.task);
    item.dataset.status = data.status;
    if (data.status === "SUCCESSFUL") bar.value = bar.max;
    status.textContent = data.status;
    if (data.status === "FAILED") status.classList.add("error");
  }

  // Why the stream is not open: what it answers now (HEAD: same status, no body).
  async function why() {
    try {
      const response = await fetch(streamUrl, { method: "HEAD", cache: "no-store" });
      return response.ok ? "the stream ended" : `GET ${streamUrl} answered HTTP ${response.status}`;
    } catch {
      return "the connection failed";
    }
  }

  async function explain(delay) {
    const what = await why();
    const failing = await window.failingChecks(readyzUrl);
    if (state.dataset.state === "open") return; // reconnected meanwhile
    problem.textContent = `Not connected: ${what}.${failing ? ` /readyz reports ${failing}.` : ""}`
      + ` Retrying in ${Math.round(delay / 1000)} s.`;
    problem.hidden = false;
  }

  function connect() {
    const url = lastEventId ? `${streamUrl}?last_event_id=${encodeURIComponent(lastEventId)}` : streamUrl;
    const source = new EventSource(url);
    source.addEventListener("open", () => {
      failures = 0;
      problem.hidden = true;
      setState("open");
    });
    source.addEventListener("task.progress", onProgress);
    source.addEventListener("task.finished", onFinished);
    source.addEventListener("error", () => {
      failures += 1;
      setState("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // Refused with an error status: EventSource will not try again; we do.
        const delay = Math.min(retryDelay * 2 ** (failures - 1), maxRetryDelay);
        setTimeout(connect, delay);
        explain(delay);
      } else {
        explain(retryDelay); // EventSource reconnects by itself after `retry` ms
      }
    });
  }

  connect();
})();
