// What /readyz reports failing, for the home page's live panels (events.js,
// rooms.js), which show it while they are not connected. Loaded before them.
"use strict";

// "name: error, name: error" for the checks that failed, "" when none did, or
// why /readyz could not be read.
window.failingChecks = async function failingChecks(readyzUrl) {
  try {
    const response = await fetch(readyzUrl, { cache: "no-store" });
    const { checks = {} } = await response.json();
    return Object.entries(checks)
      .filter(([, check]) => !check.ok)
      .map(([name, check]) => `${name}: ${check.error}`)
      .join(", ");
  } catch {
    return "the server does not answer";
  }
};
