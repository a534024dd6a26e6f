// Shared by the settings pages: the CRM session token, API calls, notices.
// The CRM opens a page with its bearer token in the URL fragment (#token=...), which never
// reaches a server or a log; the pages keep it in sessionStorage for this tab only.
"use strict";

window.crmsync = (function () {
  const TOKEN_KEY = "crmsync.token";
  const $ = (id) => document.getElementById(id);

  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function notice(kind, text) {
    const box = $("notice");
    box.className = kind;
    box.textContent = text;
    box.hidden = false;
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: Object.assign(
        { Authorization: "Bearer " + token, Accept: "application/json" },
        body ? { "Content-Type": "application/json" } : {}
      ),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) {
      let detail = "The request failed (" + response.status + ").";
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || problem.message || detail;
      } catch (_) { /* not JSON */ }
      if (response.status === 401) detail = "Your session has ended. Open this page from the CRM again.";
      throw Object.assign(new Error(detail), { status: response.status });
    }
    return response.status === 204 ? null : response.json();
  }

  const NO_SESSION = "No CRM session: open this page from the CRM (in development, from the link that make dev prints).";

  function requireSession() {
    if (takeTokenFromFragment()) return true;
    notice("error", NO_SESSION);
    return false;
  }

  return { $, api, notice, requireSession, NO_SESSION };
})();
