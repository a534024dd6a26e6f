// Email (2-way sync) (F8): turn two-way Gmail sync on for one Google account (or connect
// one), show where it stands (backfilling with progress, live, needs re-authorization,
// error), sync now, and turn it off — over /v1/settings/email-sync (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession } = window.crmsync;
  const NEW_ACCOUNT = "";
  const STATE_TEXT = {
    backfilling: "Bringing in past mail…",
    live: "Live: new mail arrives as Gmail reports it",
    needs_reauthorization: "Needs re-authorization: connect the account again to keep syncing",
    error: "Error",
  };
  const CALLBACK_ERRORS = {
    access_denied: "You cancelled the Google sign-in. Email sync was not turned on.",
    email_scope_missing:
      "Email sync was not turned on: Google did not grant access to your mail (a box was not ticked " +
      "on Google's consent page). Click “Enable” again and leave the Gmail boxes ticked.",
  };
  let refresh = null;

  function readCallbackOutcome() {
    const params = new URLSearchParams(location.search);
    if (!params.has("error") && !params.has("connected")) return;
    history.replaceState(null, "", location.pathname);
    if (params.has("error")) {
      const reason = params.get("error");
      notice("error", CALLBACK_ERRORS[reason] || "The Google sign-in did not complete. Please try again.");
    } else {
      notice("ok", "Email sync is on. Past mail with your contacts is being brought in.");
    }
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "never";
  }

  function showOff(accounts) {
    const select = $("sync-account");
    select.replaceChildren();
    for (const account of accounts.filter((a) => a.provider === "google" && a.status === "connected")) {
      select.append(new Option(account.email, account.id));
    }
    select.append(new Option("Connect a new Google account…", NEW_ACCOUNT));
    $("sync-form").hidden = false;
    $("sync-consent-hint").hidden = false;
    $("sync-on").hidden = true;
  }

  function showOn(sync) {
    $("sync-form").hidden = true;
    $("sync-consent-hint").hidden = true;
    $("sync-on").hidden = false;
    $("sync-email").textContent = sync.account_email;
    const state = $("sync-state");
    state.dataset.state = sync.state;
    state.textContent =
      sync.state === "error" && sync.last_error ? "Error: " + sync.last_error + " (retrying)" : STATE_TEXT[sync.state];
    const progress = $("sync-progress");
    progress.hidden = !sync.backfill;
    if (sync.backfill) {
      progress.textContent =
        sync.backfill.percent + "% of the last " + sync.window_days + " days checked · " +
        sync.backfill.checked + " messages read, " + sync.backfill.logged + " with your contacts brought in";
    }
    $("sync-last").textContent = "Last sync: " + when(sync.last_synced_at);
    $("sync-reconnect").hidden = sync.state !== "needs_reauthorization";
    $("sync-now").hidden = sync.state === "needs_reauthorization";
  }

  async function load() {
    clearTimeout(refresh);
    try {
      const [sync, integrations] = await Promise.all([
        api("GET", "/v1/settings/email-sync"),
        api("GET", "/v1/integrations"),
      ]);
      $("sync-loading").hidden = true;
      $("sync-window").value = sync.window_days || 90;
      if (sync.state === "off") {
        showOff(integrations.items);
      } else {
        showOn(sync);
        // While past mail comes in, the progress updates by itself.
        if (sync.state === "backfilling") refresh = setTimeout(load, 3000);
      }
    } catch (error) {
      $("sync-loading").hidden = true;
      notice("error", error.message);
    }
  }

  async function enable(connectionId) {
    const body = { window_days: Number($("sync-window").value) || 90 };
    if (connectionId) body.connection_id = connectionId;
    const data = await api("POST", "/v1/settings/email-sync", body);
    if (data.authorization_url) {
      location.assign(data.authorization_url); // Google's consent; the callback comes back here
      return;
    }
    notice("ok", "Email sync is on for " + data.sync.account_email + ". Past mail is being brought in.");
    await load();
  }

  async function submit(event) {
    event.preventDefault();
    if (!$("sync-form").reportValidity()) return;
    $("sync-enable").disabled = true;
    try {
      await enable($("sync-account").value);
    } catch (error) {
      notice("error", error.message);
    } finally {
      $("sync-enable").disabled = false;
    }
  }

  async function act(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      notice("error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  function init() {
    if (!requireSession()) return;
    readCallbackOutcome();
    $("sync-form").addEventListener("submit", submit);
    $("sync-now").addEventListener("click", () =>
      act($("sync-now"), async () => {
        await api("POST", "/v1/settings/email-sync/run");
        notice("ok", "A sync was started.");
        await load();
      })
    );
    $("sync-reconnect").addEventListener("click", () =>
      act($("sync-reconnect"), async () => {
        const sync = await api("GET", "/v1/settings/email-sync");
        await enable(sync.connection_id);
      })
    );
    $("sync-disable").addEventListener("click", () => {
      $("sync-disable-confirm").hidden = false;
      $("sync-disable-yes").focus();
    });
    $("sync-disable-no").addEventListener("click", () => {
      $("sync-disable-confirm").hidden = true;
      $("sync-disable").focus();
    });
    $("sync-disable-yes").addEventListener("click", () =>
      act($("sync-disable-yes"), async () => {
        await api("DELETE", "/v1/settings/email-sync");
        $("sync-disable-confirm").hidden = true;
        notice("ok", "Email sync is off. Mail brought in from Gmail is being removed.");
        await load();
      })
    );
    load();
  }

  init();
})();
