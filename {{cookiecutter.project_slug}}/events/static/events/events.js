// The live events panel of the home page. EventSource reconnects by itself
// and sends Last-Event-ID, so the server replays whatever was missed.
"use strict";
(() => {
  const panel = document.getElementById("events-panel");
  const state = panel.querySelector(".state");
  const log = panel.querySelector(".log");
  const form = panel.querySelector("form");
  const source = new EventSource(panel.dataset.streamUrl);
  const shownLimit = 100;

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
    add(`${event.lastEventId} ${event.type}`, event.data);
  }

  function watch(text) {
    // Adding the same listener twice is a no-op, so names may repeat.
    for (const name of text.split(/[\s,]+/)) if (name) source.addEventListener(name, show);
  }

  source.addEventListener("open", () => setState("open"));
  source.addEventListener("error", () => {
    setState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  });
  // The server could not resume from our last id: what is shown may have gaps.
  source.addEventListener("reset", (event) => {
    log.replaceChildren();
    show(event);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    watch(form.elements.names.value);
  });
  watch(form.elements.names.value);
})();
