// My Profile → Calendar Settings: connected calendars, linked calendar, conflict calendars,
// sync preferences — over /v1/calendars and /v1/settings (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession } = window.crmsync;
  const STATUS = { connected: ["✔", "Connected"], needs_reauth: ["⚠", "Needs re-authorization"], error: ["✖", "Error"] };
  // The provider's name as users know it (the integration's `provider`).
  const PROVIDERS = { google: "Google", microsoft: "Outlook", icloud: "iCloud" };
  const providerName = (account) => PROVIDERS[account.provider] || account.provider;
  let state = { integrations: [], calendars: [], settings: null };

  const key = (c) => c.connection_id + "\n" + c.calendar_id;
  const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const isLinked = (c) => {
    const linked = state.settings && state.settings.linked_calendar;
    return Boolean(linked) && key(linked) === key(c);
  };

  // A full (first) sync under way: how many events it has mirrored so far.
  function syncProgressText(sync) {
    if (sync.events_so_far === null || sync.events_so_far === undefined) return "";
    const n = sync.events_so_far;
    return "· Syncing… " + n + (n === 1 ? " event" : " events") + " so far";
  }

  // A calendar's real sync state, as GET /v1/calendars reports it (and its account's).
  function syncText(c, account) {
    if (c.sync.state === "off") return "";
    if (account.status !== "connected") return "· not syncing: the account must be reconnected";
    if (syncProgressText(c.sync)) return syncProgressText(c.sync);
    if (c.sync.state === "failing") {
      return "· failing since " + when(c.sync.last_error_at) + ": " + c.sync.last_error;
    }
    if (c.sync.state === "pending") return "· pending (first sync not done yet)";
    return c.sync.last_synced_at ? "· synced at " + when(c.sync.last_synced_at) : "· synced";
  }

  function accountControls(account) {
    const box = document.createElement("div");
    box.className = "account-controls";
    if (account.status !== "connected") {
      const warning = document.createElement("p");
      warning.className = "warning";
      warning.textContent = account.provider === "icloud"
        ? "⚠ iCloud no longer accepts this account's app-specific password, so its calendars are not syncing. " +
          "Reconnect it with a new app-specific password to sync them again."
        : "⚠ " + providerName(account) + " no longer accepts this account's access, so its calendars are not syncing. " +
          "Reconnect it to sync them again.";
      const reconnect = document.createElement("button");
      reconnect.type = "button";
      reconnect.className = "reconnect";
      reconnect.textContent = "Reconnect";
      reconnect.setAttribute("aria-label", "Reconnect " + account.email);
      reconnect.addEventListener("click", () => reconnectAccount(reconnect, account));
      box.append(warning, reconnect);
      return box;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sync-now";
    button.textContent = "Sync now";
    button.setAttribute("aria-label", "Sync now " + account.email);
    button.addEventListener("click", () => syncNow(button, account));
    const last = document.createElement("span");
    last.className = "last-sync muted";
    const times = state.calendars
      .filter((c) => c.connection_id === account.id && c.sync.last_synced_at)
      .map((c) => c.sync.last_synced_at)
      .sort();
    last.textContent = times.length ? "Last synced " + when(times[times.length - 1]) : "Not synced yet";
    box.append(button, " ", last);
    return box;
  }

  // The same flow as the Integrations page's Reconnect: the provider's consent (Google's,
  // Microsoft's) for this account; an iCloud account needs a new app-specific password, typed
  // on the Integrations page.
  async function reconnectAccount(button, account) {
    if (account.provider === "icloud") {
      location.assign("integrations");
      return;
    }
    button.disabled = true;
    try {
      const data = await api("POST", "/v1/integrations/" + account.provider + "/authorize", { login_hint: account.email });
      // The Integrations page names the provider in the callback's messages (settings.js).
      sessionStorage.setItem("crmsync.signing_in", account.provider);
      location.assign(data.authorization_url);
    } catch (error) {
      notice("error", error.message);
      button.disabled = false;
    }
  }

  const latestSync = (connectionId) =>
    state.calendars
      .filter((c) => c.connection_id === connectionId)
      .map((c) => c.sync.last_synced_at || "")
      .sort()
      .pop() || "";

  // Sync now: queue the account's syncs, then look a few times for them to have run.
  async function syncNow(button, account) {
    button.disabled = true;
    const before = latestSync(account.id);
    try {
      await api("POST", "/v1/integrations/" + encodeURIComponent(account.id) + "/sync");
      notice("ok", "Syncing " + account.email + "…");
      for (let attempt = 0; attempt < 10; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        state.calendars = (await api("GET", "/v1/calendars")).items;
        const after = latestSync(account.id);
        if (after && after !== before) {
          render();
          notice("ok", account.email + " synced at " + when(after) + ".");
          return;
        }
      }
      render();
      notice("ok", "The sync of " + account.email + " is queued; it has not finished yet.");
    } catch (error) {
      notice("error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  function renderAccounts() {
    const box = $("accounts");
    box.replaceChildren();
    $("no-accounts").hidden = state.integrations.length > 0;
    for (const account of state.integrations) {
      const section = document.createElement("div");
      section.className = "account-block";
      section.dataset.email = account.email;
      section.dataset.status = account.status;
      const head = document.createElement("h3");
      const [icon, words] = STATUS[account.status] || ["?", account.status];
      section.dataset.provider = account.provider;
      head.innerHTML = '<span class="status-icon" aria-hidden="true"></span> <span class="provider"></span> <span class="email"></span> <span class="status-text"></span>';
      head.querySelector(".status-icon").textContent = icon;
      head.querySelector(".provider").textContent = providerName(account);
      head.querySelector(".email").textContent = account.email;
      head.querySelector(".status-text").textContent = words;
      section.appendChild(head);
      section.appendChild(accountControls(account));
      const list = document.createElement("ul");
      list.className = "calendars";
      for (const c of state.calendars.filter((c) => c.connection_id === account.id)) {
        const row = $("calendar-row").content.firstElementChild.cloneNode(true);
        row.dataset.calendarId = c.calendar_id;
        row.querySelector(".swatch").style.background = c.color || "#ccc";
        row.querySelector(".name").textContent = c.name;
        row.querySelector(".tag").textContent = [c.primary ? "primary" : "", c.writable ? "" : "read-only"].filter(Boolean).join(", ");
        row.dataset.sync = c.sync.state;
        row.querySelector(".sync").textContent = syncText(c, account);
        row.querySelector(".linked-badge").hidden = !isLinked(c);
        list.appendChild(row);
      }
      section.appendChild(list);
      box.appendChild(section);
    }
  }

  // Deletions the mass-deletion guard held back: the user applies or ignores them.
  const ANSWERED = {
    apply: "Applying the deletions…",
    ignore: "Keeping your CRM appointments…",
  };

  function renderHeld() {
    const box = $("held-deletions");
    box.replaceChildren();
    for (const c of state.calendars.filter((c) => c.pending_deletions)) {
      const held = c.pending_deletions;
      const row = $("held-row").content.firstElementChild.cloneNode(true);
      row.dataset.calendarId = c.calendar_id;
      const account = state.integrations.find((a) => a.id === c.connection_id);
      row.querySelector(".held-text").textContent =
        (account ? providerName(account) : "The calendar") + " reports that " + held.deletions + " of " + held.mirrored + " events were deleted from " + c.name + "." +
        (held.decision ? " " + ANSWERED[held.decision] : "");
      for (const [selector, decision, message] of [
        [".held-apply", "apply", "The deletions will be applied."],
        [".held-ignore", "ignore", "Your CRM appointments are kept."],
      ]) {
        const button = row.querySelector(selector);
        button.disabled = Boolean(held.decision);
        button.addEventListener("click", () => answer(button, c, decision, message));
      }
      box.appendChild(row);
    }
  }

  async function answer(button, calendar, decision, message) {
    button.disabled = true;
    try {
      const body = { connection_id: calendar.connection_id, calendar_id: calendar.calendar_id };
      const updated = await api("POST", "/v1/calendars/pending-deletions/" + decision, body);
      state.calendars = state.calendars.map((c) => (key(c) === key(updated) ? updated : c));
      renderHeld();
      notice("ok", message);
    } catch (error) {
      notice("error", error.message);
      button.disabled = false;
    }
  }

  // A calendar's name, and its account only when that says something more (a primary
  // calendar is named after its account).
  function calendarLabel(c, before, after) {
    return c.name === c.account_email ? c.name : c.name + before + c.account_email + after;
  }

  function renderLinked() {
    const linked = state.settings.linked_calendar;
    // The calendar's name, and its account only when that says something more.
    $("linked-current").textContent = linked ? calendarLabel(linked, " (", ")") : "No linked calendar.";
    $("linked-add").textContent = linked ? "Change" : "Add";
    $("linked-remove").hidden = !linked;
    const accounts = $("linked-account");
    accounts.replaceChildren();
    // Grouped by provider: a Google and an iCloud account may share an address.
    const groups = new Map();
    for (const account of state.integrations.filter((a) => a.status === "connected")) {
      const name = providerName(account);
      if (!groups.has(name)) {
        const group = document.createElement("optgroup");
        group.label = name;
        groups.set(name, group);
        accounts.appendChild(group);
      }
      groups.get(name).appendChild(new Option(account.email, account.id));
    }
    fillCalendarChoices();
  }

  function fillCalendarChoices() {
    const select = $("linked-calendar");
    select.replaceChildren();
    for (const c of state.calendars.filter((c) => c.connection_id === $("linked-account").value && c.writable)) {
      select.add(new Option(c.name, c.calendar_id));
    }
  }

  function renderConflicts() {
    const box = $("conflict-list");
    box.replaceChildren();
    const chosen = new Set(state.settings.conflict_calendars.map(key));
    for (const c of state.calendars) {
      const label = document.createElement("label");
      label.className = "check";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = key(c);
      input.checked = chosen.has(key(c));
      label.append(input, " " + calendarLabel(c, " — ", ""));
      box.appendChild(label);
    }
  }

  function renderPreferences() {
    const p = state.settings.sync_preferences;
    for (const radio of document.querySelectorAll('input[name="direction"]')) radio.checked = radio.value === p.direction;
    $("external-deletion").value = p.external_deletion;
    $("days-back").value = p.window_days_back;
    $("days-ahead").value = p.window_days_ahead;
  }

  function render() {
    renderHeld();
    renderAccounts();
    renderLinked();
    renderConflicts();
    renderPreferences();
  }

  async function load() {
    const [integrations, calendars, settings] = await Promise.all([
      api("GET", "/v1/integrations"),
      api("GET", "/v1/calendars"),
      api("GET", "/v1/settings/calendar"),
    ]);
    state = { integrations: integrations.items, calendars: calendars.items, settings };
    render();
    $("loading").hidden = true;
    $("settings-content").disabled = false;
    $("settings-content").removeAttribute("aria-busy");
  }

  // Without settings there is nothing to edit: one message, no controls.
  function unavailable(message) {
    $("loading").hidden = true;
    $("settings-content").hidden = true;
    if (message) notice("error", message);
  }

  async function save(button, call, message) {
    button.disabled = true;
    try {
      state.settings = await call();
      render();
      notice("ok", message);
    } catch (error) {
      notice("error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  $("linked-add").addEventListener("click", () => { $("linked-form").hidden = false; $("linked-account").focus(); });
  $("linked-cancel").addEventListener("click", () => { $("linked-form").hidden = true; });
  $("linked-account").addEventListener("change", fillCalendarChoices);
  $("linked-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { connection_id: $("linked-account").value, calendar_id: $("linked-calendar").value };
    save($("linked-save"), () => api("PUT", "/v1/settings/linked-calendar", body), "Linked calendar saved.")
      .then(() => { $("linked-form").hidden = true; });
  });
  $("linked-remove").addEventListener("click", (event) =>
    save(event.target, () => api("DELETE", "/v1/settings/linked-calendar"), "The linked calendar was removed."));
  $("conflict-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const calendars = [...document.querySelectorAll("#conflict-list input:checked")].map((input) => {
      const [connection_id, calendar_id] = input.value.split("\n");
      return { connection_id, calendar_id };
    });
    save($("conflict-save"), () => api("PUT", "/v1/settings/conflict-calendars", { calendars }), "Conflict calendars saved.");
  });
  $("prefs-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {
      direction: document.querySelector('input[name="direction"]:checked').value,
      external_deletion: $("external-deletion").value,
      window_days_back: Number($("days-back").value),
      window_days_ahead: Number($("days-ahead").value),
    };
    save($("prefs-save"), () => api("PUT", "/v1/settings/sync-preferences", body), "Sync preferences saved.");
  });

  if (requireSession()) load().catch((error) => unavailable(error.message));
  else unavailable();
})();
