// The chat panel of the home page: one websocket to /ws/rooms/<room>/,
// reconnected with backoff whatever the close code: 1012 (a server restart),
// 1011 (the room failed, Redis say), 1008 (the rate limit), 1006 (a refused
// handshake: 503 while Redis or the database is down, or a dropped connection).
// A browser hides why a handshake was refused, so while it is not connected
// the panel says what the close code means and what /readyz reports failing.
"use strict";
(() => {
  const panel = document.getElementById("rooms-panel");
  const state = panel.querySelector(".state");
  const problem = panel.querySelector(".problem");
  const log = panel.querySelector(".log");
  const roomForm = panel.querySelector("form.room");
  const sendForm = panel.querySelector("form.send");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const shownLimit = 100;
  const firstRetryDelay = 1000;
  const maxRetryDelay = 30000;
  const closeMeanings = {
    1006: "the connection was refused or dropped",
    1008: "closed for a policy violation, such as sending too fast",
    1011: "the room failed on the server",
    1012: "the server is restarting",
  };
  let socket = null;
  let retryDelay = firstRetryDelay;
  let retryTimer = null;

  function setState(value) {
    state.dataset.state = value;
    state.textContent = value;
  }

  function add(meta, text, isError = false) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.className = "meta";
    label.textContent = meta;
    item.append(label, text);
    if (isError) item.classList.add("error");
    log.prepend(item);
    while (log.children.length > shownLimit) log.lastElementChild.remove();
  }

  async function explain(event, delay) {
    const meaning = closeMeanings[event.code] ?? "closed";
    const failing = await window.failingChecks(panel.dataset.readyzUrl);
    if (state.dataset.state === "open") return; // reconnected meanwhile
    problem.textContent = `Not connected: ${meaning} (code ${event.code}).`
      + `${failing ? ` /readyz reports ${failing}.` : ""} Retrying in ${Math.round(delay / 1000)} s.`;
    problem.hidden = false;
  }

  function connect() {
    clearTimeout(retryTimer);
    const room = roomForm.elements.room.value;
    const path = `${panel.dataset.socketPath}${encodeURIComponent(room)}/`;
    const current = new WebSocket(`${scheme}//${location.host}${path}`);
    socket = current;
    setState("connecting");
    current.addEventListener("open", () => {
      retryDelay = firstRetryDelay;
      problem.hidden = true;
      setState("open");
      add("joined", room);
    });
    current.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.error) {
        add("error", message.error, true);
      } else {
        const time = new Date(message.sent_at).toLocaleTimeString();
        add(`${time} ${message.user}`, message.message);
      }
    });
    current.addEventListener("close", (event) => {
      if (socket !== current) return; // replaced: the user joined another room
      add("closed", `code ${event.code}${event.reason ? `: ${event.reason}` : ""}`, true);
      setState("reconnecting");
      retryTimer = setTimeout(connect, retryDelay);
      explain(event, retryDelay);
      retryDelay = Math.min(retryDelay * 2, maxRetryDelay);
    });
  }

  roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const previous = socket;
    socket = null;
    previous?.close();
    retryDelay = firstRetryDelay;
    connect();
  });
  sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = sendForm.elements.message;
    if (socket?.readyState !== WebSocket.OPEN) {
      add("error", "not connected: the message was not sent", true);
      return;
    }
    socket.send(JSON.stringify({ message: input.value }));
    input.value = "";
  });
  connect();
})();
