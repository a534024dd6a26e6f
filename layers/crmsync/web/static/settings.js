// Integrations settings page: a small static page over the /v1 API (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession, NO_SESSION } = window.crmsync;
  //: The provider whose sign-in a message is about (its consent page was the last trip).
  const PROVIDER_NAMES = { google: "Google", microsoft: "Microsoft" };
  const MESSAGES = {
    access_denied: "You cancelled the Google sign-in. Nothing was connected.",
    state_unknown: "This sign-in was already completed or is unknown. Please start again with “Sign in with Google”.",
    state_expired: "The sign-in took longer than 10 minutes. Please start again.",
    state_mismatch: "The sign-in was started in another browser session. Please start again here.",
    state_missing: "Google's answer was incomplete. Please start again.",
    exchange_failed: "Google did not confirm the sign-in. Please try again.",
    provider_error: "Google reported an error during sign-in. Please try again.",
    unsupported_provider: "That provider is not supported.",
    connect_failed: "The account could not be connected. Please try again.",
    admin_consent_required:
      "Your organisation's administrator must approve crmsync first: ask them to grant admin consent " +
      "to crmsync (Microsoft Entra admin center, Enterprise applications), then sign in again. " +
      "Nothing was connected.",
    contacts_scope_missing:
      "Google Sync was not turned on: the box “See, edit, download, and permanently delete your contacts” " +
      "was not ticked at Google, and the CRM needs it to sync your contacts. " +
      "Click “Enable Google Sync” again and leave that box ticked.",
  };
  //: What the contacts account shows instead of its "Enable Google Sync" button (seed 004).
  const SYNC_STATE_TEXT = { syncing: "Syncing…", complete: "Complete", applying: "Applying your answer…" };
  const STATUS_TEXT = {
    connected: "Connected",
    needs_reauth: "Needs re-authorization: Google no longer accepts this connection. Reconnect it.",
    error: "Error: the connection is not working.",
  };
  const STATUS_ICON = { connected: "✔", needs_reauth: "⚠", error: "✖" };
  //: What a broken Microsoft connection says instead.
  const MICROSOFT_STATUS_TEXT = {
    needs_reauth: "Needs re-authorization: Microsoft no longer accepts this connection. Reconnect it.",
  };
  //: What a broken iCloud connection says instead (no Google sign-in can mend it).
  const ICLOUD_STATUS_TEXT = {
    needs_reauth:
      "Needs a new app-specific password: iCloud no longer accepts this one (it was revoked or changed). " +
      "Click “Reconnect” and enter a new one.",
  };

  //: The connection being reconnected, kept across the trip to Google's consent page.
  const RECONNECT_KEY = "crmsync.reconnecting";
  //: The account being enabled for Google Sync (or "new"), kept across the trip to Google.
  const ENABLING_KEY = "crmsync.enabling";
  //: The provider whose consent page the browser went to (its messages name it).
  const PROVIDER_KEY = "crmsync.signing_in";

  // A message about the sign-in with `provider`: Google's texts name Google; Microsoft's the same
  // texts with its name (access_denied, exchange_failed, ...).
  function message(reason, provider) {
    const text = MESSAGES[reason] || MESSAGES.connect_failed;
    const name = PROVIDER_NAMES[provider];
    return name && provider !== "google" ? text.replaceAll("Google", name) : text;
  }

  // The consent's outcome from the callback's redirect (?connected=<id> or ?error=<reason>);
  // the "connected" notice waits for the list, which names the account.
  function readCallbackOutcome() {
    const params = new URLSearchParams(location.search);
    const reconnecting = JSON.parse(sessionStorage.getItem(RECONNECT_KEY) || "null");
    const enabling = sessionStorage.getItem(ENABLING_KEY) !== null;
    const provider = sessionStorage.getItem(PROVIDER_KEY) || "google";
    sessionStorage.removeItem(RECONNECT_KEY);
    sessionStorage.removeItem(ENABLING_KEY);
    sessionStorage.removeItem(PROVIDER_KEY);
    if (params.has("error") || params.has("connected")) {
      history.replaceState(null, "", location.pathname);
    }
    if (params.has("error")) {
      notice("error", message(params.get("error"), provider));
      return null;
    }
    return params.has("connected") ? { id: params.get("connected"), reconnecting, enabling, provider } : null;
  }

  function announceConnected(outcome, items, sync) {
    const connected = items.find((item) => item.id === outcome.id);
    const broken = outcome.reconnecting;
    if (connected && outcome.enabling && sync && sync.connection_id === connected.id) {
      notice("ok", "Google Sync is on for " + connected.email + ".");
    } else if (!connected) {
      notice("ok", "Your " + (PROVIDER_NAMES[outcome.provider] || "Google") + " account is connected.");
    } else if (broken && broken.id !== connected.id) {
      // Google let the user choose another account than the one to repair: that one is a
      // new connection, and the broken one is as it was.
      notice(
        "warn",
        "You signed in as " + connected.email + ", so it was connected as another account. " +
          broken.email + " still needs re-authorization: click its Reconnect and choose " +
          broken.email + " at " + (PROVIDER_NAMES[outcome.provider] || "Google") + "."
      );
    } else {
      notice("ok", connected.email + " is connected.");
    }
  }

  // No session, or the API refused it: one message, and nothing to click.
  function sessionEnded(message) {
    $("google-card").hidden = true;
    $("microsoft-card").hidden = true;
    $("icloud-card").hidden = true;
    notice("error", message);
  }

  function failed(error) {
    if (error.status === 401) sessionEnded(error.message);
    else notice("error", error.message);
  }

  // Contact deletions the mass-deletion guard held back: the user applies or ignores them.
  const HELD_SIDE = {
    google: (d, email) =>
      "Google reports that " + d.deletions + " of the " + d.mirrored + " synced contacts were deleted from " +
      email + ". Apply unlinks them in the CRM (your CRM contacts stay); Ignore adds them to Google again.",
    crm: (d, email) =>
      d.deletions + " of the " + d.mirrored + " synced contacts were deleted in the CRM. Apply deletes the ones " +
      "the CRM added to " + email + "'s Google Contacts; Ignore keeps them in Google.",
  };
  const HELD_ANSWERED = { apply: "Applying the deletions…", ignore: "Keeping the contacts…" };

  function renderHeldContacts(sync) {
    const box = $("held-contacts");
    box.replaceChildren();
    const held = (sync && sync.pending_deletions) || [];
    if (!held.length) return;
    const card = $("held-contacts-row").content.firstElementChild.cloneNode(true);
    const lines = card.querySelector(".held-lines");
    for (const d of held) {
      const line = document.createElement("li");
      line.className = "held-text";
      line.textContent = HELD_SIDE[d.side](d, sync.account_email) + (d.decision ? " " + HELD_ANSWERED[d.decision] : "");
      lines.appendChild(line);
    }
    const answered = held.every((d) => d.decision);
    for (const [selector, decision, message] of [
      [".held-apply", "apply", "The contact deletions will be applied at the next sync, in a moment."],
      [".held-ignore", "ignore", "The contacts are kept; the next sync, in a moment, carries it out."],
    ]) {
      const button = card.querySelector(selector);
      button.disabled = answered;
      button.addEventListener("click", () => answerHeld(card, decision, message));
    }
    box.appendChild(card);
  }

  async function answerHeld(card, decision, message) {
    const buttons = card.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      renderHeldContacts(await api("POST", "/v1/contacts/sync/pending-deletions/" + decision, {}));
      notice("ok", message);
    } catch (error) {
      buttons.forEach((b) => (b.disabled = false));
      failed(error);
    }
  }

  function render(items, sync, providers) {
    renderHeldContacts(sync);
    const google = items.filter((item) => item.provider === "google");
    const microsoft = items.filter((item) => item.provider === "microsoft");
    const icloud = items.filter((item) => item.provider === "icloud");
    const list = $("accounts");
    list.replaceChildren();
    $("loading").hidden = true;
    $("empty").hidden = google.length > 0;
    // With no account yet, Google Sync connects one (calendar and contacts in one consent).
    $("enable-sync-new").hidden = google.length > 0 || !sync;
    for (const item of google) {
      list.appendChild(renderRow(item, sync));
    }
    const icloudList = $("icloud-accounts");
    icloudList.replaceChildren();
    $("icloud-empty").hidden = icloud.length > 0;
    for (const item of icloud) {
      icloudList.appendChild(renderRow(item, null));
    }
    // Microsoft: offered where the deployment configures it (its accounts show regardless).
    $("microsoft-card").hidden = !(providers || []).includes("microsoft") && microsoft.length === 0;
    $("sign-in-microsoft").hidden = !(providers || []).includes("microsoft");
    const microsoftList = $("microsoft-accounts");
    microsoftList.replaceChildren();
    $("microsoft-empty").hidden = microsoft.length > 0;
    for (const item of microsoft) {
      microsoftList.appendChild(renderRow(item, null));
    }
  }

  function contactsFound(count) {
    return count + (count === 1 ? " Contact Found" : " Contacts Found");
  }

  // Google Sync on a row: the contacts account is marked and shows the sync state and "Turn off";
  // every other working Google account offers "Enable Google Sync" (enabling one moves it).
  // `sync` is null when its state could not be read: then the row offers neither.
  function renderSync(row, item, sync) {
    if (!sync || item.provider !== "google") return;
    const syncing = sync.state !== "off" && sync.connection_id === item.id;
    if (!syncing) {
      const enable = row.querySelector(".enable-sync");
      enable.hidden = item.status !== "connected";
      enable.setAttribute("aria-label", "Enable Google Sync for " + item.email);
      enable.addEventListener("click", () => enableSync(item, enable));
      return;
    }
    row.dataset.sync = sync.state;
    row.querySelector(".sync-mark").hidden = false;
    const detail = row.querySelector(".sync-detail");
    if (sync.last_error) {
      detail.classList.add("sync-error");
      detail.textContent = "Last sync failed: " + sync.last_error;
    } else if (sync.last_synced_at) {
      detail.textContent = "contacts and calendar · synced at " + new Date(sync.last_synced_at).toLocaleString();
    } else {
      detail.textContent = "contacts and calendar";
    }
    if (sync.state === "contacts_found") {
      const link = row.querySelector(".sync-found");
      link.textContent = contactsFound(sync.candidates);
      link.hidden = false;
    } else {
      const state = row.querySelector("span.sync-state");
      state.textContent = SYNC_STATE_TEXT[sync.state] || sync.state;
      state.hidden = false;
    }
    const off = row.querySelector(".turn-off");
    off.hidden = false;
    off.setAttribute("aria-label", "Turn off Google Sync for " + item.email);
    off.addEventListener("click", () => turnOff(item, off));
  }

  async function enableSync(item, button) {
    button.disabled = true;
    try {
      const data = await api("POST", "/v1/contacts/sync", item ? { connection_id: item.id } : {});
      if (data.authorization_url) {
        sessionStorage.removeItem(RECONNECT_KEY);
        sessionStorage.setItem(ENABLING_KEY, item ? item.id : "new");
        sessionStorage.removeItem(PROVIDER_KEY);
        location.assign(data.authorization_url);
        return;
      }
      notice("ok", "Google Sync is on for " + item.email + ".");
      await load();
    } catch (error) {
      button.disabled = false;
      failed(error);
    }
  }

  async function turnOff(item, button) {
    button.disabled = true;
    try {
      await api("DELETE", "/v1/contacts/sync");
      notice("ok", "Google Sync is off for " + item.email + ". Nothing was deleted.");
      await load();
    } catch (error) {
      button.disabled = false;
      failed(error);
    }
  }

  function renderRow(item, sync) {
    const row = $("account-row").content.firstElementChild.cloneNode(true);
    row.dataset.id = item.id;
    row.dataset.status = item.status;
    row.dataset.email = item.email;
    row.querySelector(".status-icon").textContent = STATUS_ICON[item.status] || "?";
    row.querySelector(".status-icon").setAttribute("title", item.status);
    row.querySelector(".email").textContent = item.email;
    const icloud = item.provider === "icloud";
    const microsoft = item.provider === "microsoft";
    row.querySelector(".status-text").textContent =
      (icloud && ICLOUD_STATUS_TEXT[item.status]) ||
      (microsoft && MICROSOFT_STATUS_TEXT[item.status]) ||
      STATUS_TEXT[item.status] ||
      item.status;
    const working = item.status === "connected";
    renderSync(row, item, sync);
    const reconnect = row.querySelector(".reconnect");
    reconnect.hidden = working;
    reconnect.setAttribute("aria-label", "Reconnect " + item.email);
    reconnect.addEventListener("click", () => {
      if (icloud) {
        // A password account reconnects through the form: the same Apple ID, a new password.
        $("icloud-username").value = item.email;
        $("icloud-password").value = "";
        $("icloud-password").focus();
        return;
      }
      sessionStorage.setItem(RECONNECT_KEY, JSON.stringify({ id: item.id, email: item.email }));
      signIn(item.email, reconnect, microsoft ? "microsoft" : "google");
    });
    // A working account shows the green "Connected" button, a broken one a plain "Remove":
    // either opens the same confirmation.
    const opener = row.querySelector(working ? ".connected" : ".remove");
    opener.hidden = false;
    opener.setAttribute("aria-label", working ? "Connected: disconnect " + item.email : "Remove " + item.email);
    const confirmBox = row.querySelector(".confirm");
    const question = row.querySelector(".question");
    question.id = "question-" + item.id;
    question.textContent =
      "Disconnect " + item.email + "? Its calendars stop syncing and its data mirrored here is removed.";
    confirmBox.setAttribute("aria-labelledby", question.id);
    const confirmButton = row.querySelector(".confirm-disconnect");
    confirmButton.setAttribute("aria-label", "Disconnect " + item.email);
    const cancel = row.querySelector(".cancel");

    function close() {
      if (confirmButton.disabled) return; // the disconnect is under way
      confirmBox.hidden = true;
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    }
    opener.addEventListener("click", () => {
      confirmBox.hidden = false;
      opener.setAttribute("aria-expanded", "true");
      cancel.focus(); // the safe choice first
    });
    cancel.addEventListener("click", close);
    confirmBox.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    confirmButton.addEventListener("click", async () => {
      confirmButton.disabled = true;
      cancel.disabled = true;
      confirmButton.textContent = "Disconnecting…";
      notice("info", "Disconnecting " + item.email + "…");
      try {
        await api("DELETE", "/v1/integrations/" + encodeURIComponent(item.id));
        notice("ok", item.email + " was disconnected.");
        await load();
      } catch (error) {
        confirmButton.disabled = false;
        cancel.disabled = false;
        confirmButton.textContent = "Disconnect";
        failed(error);
      }
    });
    return row;
  }

  async function load(outcome) {
    try {
      // The Google Sync state is read beside the accounts; if it fails the accounts still show.
      const [data, sync] = await Promise.all([
        api("GET", "/v1/integrations"),
        api("GET", "/v1/contacts/sync").catch((error) => error),
      ]);
      const syncError = sync instanceof Error ? sync : null;
      render(data.items, syncError ? null : sync, data.providers);
      if (outcome) announceConnected(outcome, data.items, syncError ? null : sync);
      if (syncError) failed(syncError);
    } catch (error) {
      $("loading").hidden = true;
      failed(error);
    }
  }

  // "Sign in with Google" or "Sign in with Microsoft": start the consent, go to the provider's page.
  async function signIn(loginHint, button, provider = "google") {
    button.disabled = true;
    sessionStorage.removeItem(ENABLING_KEY);
    try {
      const path = "/v1/integrations/" + provider + "/authorize";
      const data = await api("POST", path, loginHint ? { login_hint: loginHint } : {});
      sessionStorage.setItem(PROVIDER_KEY, provider);
      location.assign(data.authorization_url);
    } catch (error) {
      button.disabled = false;
      sessionStorage.removeItem(RECONNECT_KEY);
      failed(error);
    }
  }

  // iCloud: the Apple ID and an app-specific password, checked by iCloud before anything is kept.
  function icloudError(message, field) {
    const box = $("icloud-error");
    box.textContent = message;
    box.hidden = !message;
    for (const id of ["icloud-username", "icloud-password", "icloud-server"]) {
      $(id).setAttribute("aria-invalid", id === field ? "true" : "false");
    }
    if (field) $(field).focus();
  }

  async function connectIcloud(event) {
    event.preventDefault();
    const username = $("icloud-username").value.trim();
    const password = $("icloud-password").value.trim();
    const server = $("icloud-server").value.trim();
    if (!username) return icloudError("Enter your Apple ID (the email you sign in to iCloud with).", "icloud-username");
    if (!password) return icloudError("Enter an app-specific password.", "icloud-password");
    icloudError("");
    const button = $("icloud-connect");
    button.disabled = true;
    button.textContent = server ? "Checking with the server…" : "Checking with iCloud…";
    try {
      const body = { username, password };
      if (server) body.server_url = server;
      const item = await api("POST", "/v1/integrations/icloud", body);
      $("icloud-password").value = "";
      notice(
        "ok",
        item.email + " is connected. Its calendars are listed under Calendar Settings, where you choose " +
          "which ones to sync."
      );
      await load();
    } catch (error) {
      if (error.status === 401) return failed(error);
      const field = error.status === 422 ? "icloud-password" : error.status === 400 && server ? "icloud-server" : null;
      icloudError(error.message, field);
    } finally {
      button.disabled = false;
      button.textContent = "Connect iCloud";
    }
  }

  $("icloud-form").addEventListener("submit", connectIcloud);
  $("enable-sync-new").addEventListener("click", () => enableSync(null, $("enable-sync-new")));
  $("sign-in-google").addEventListener("click", () => {
    sessionStorage.removeItem(RECONNECT_KEY);
    signIn(undefined, $("sign-in-google"));
  });
  $("sign-in-microsoft").addEventListener("click", () => {
    sessionStorage.removeItem(RECONNECT_KEY);
    signIn(undefined, $("sign-in-microsoft"), "microsoft");
  });
  const outcome = readCallbackOutcome();
  if (!requireSession()) {
    sessionEnded(NO_SESSION);
  } else {
    load(outcome);
  }
})();
