// BCC logging settings (F9): the user's address (copy, rotate), sender addresses
// (add and verify by mail, remove) and the never-log list (add, remove) — over
// /v1/settings/bcc-address, /v1/settings/sender-addresses and /v1/settings/never-log (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession } = window.crmsync;
  const STATUS_TEXT = {
    connected_account: "Verified · connected account",
    verified: "Verified",
    pending: "Pending verification: send the verification email",
  };

  function showAddress(data) {
    $("address-loading").hidden = true;
    $("bcc-address").textContent = data.address;
    $("copy-address").disabled = false;
    $("rotate-address").disabled = false;
  }

  async function loadAddress() {
    try {
      showAddress(await api("GET", "/v1/settings/bcc-address"));
    } catch (error) {
      $("address-loading").hidden = true;
      notice("error", error.message);
    }
  }

  async function copyAddress() {
    const text = $("bcc-address").textContent;
    try {
      await navigator.clipboard.writeText(text);
      notice("ok", "Address copied.");
    } catch (_) {
      // No clipboard permission: select it so the user can copy it by hand.
      const range = document.createRange();
      range.selectNodeContents($("bcc-address"));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      notice("error", "Copying is not allowed here; the address is selected, copy it with Ctrl+C.");
    }
  }

  async function rotate() {
    $("rotate-yes").disabled = true;
    try {
      showAddress(await api("POST", "/v1/settings/bcc-address/rotate"));
      $("rotate-confirm").hidden = true;
      notice("ok", "A new address was issued. The previous one no longer logs mail.");
    } catch (error) {
      notice("error", error.message);
    } finally {
      $("rotate-yes").disabled = false;
    }
  }

  function renderSenders(items) {
    const list = $("senders");
    list.replaceChildren();
    for (const item of items) {
      const row = $("sender-row").content.firstElementChild.cloneNode(true);
      row.dataset.email = item.email;
      row.dataset.status = item.status;
      row.querySelector(".status-icon").textContent = item.status === "verified" ? "✔" : "⚠";
      row.querySelector(".email").textContent = item.email;
      row.querySelector(".status-text").textContent =
        item.source === "connected_account" ? STATUS_TEXT.connected_account : STATUS_TEXT[item.status];
      const remove = row.querySelector(".remove");
      remove.hidden = item.source === "connected_account";
      remove.setAttribute("aria-label", "Remove " + item.email);
      remove.addEventListener("click", async () => {
        remove.disabled = true;
        try {
          await api("DELETE", "/v1/settings/sender-addresses/" + encodeURIComponent(item.email));
          notice("ok", item.email + " was removed.");
          if ($("verification-email").textContent === item.email) $("verification").hidden = true;
          await loadSenders();
        } catch (error) {
          remove.disabled = false;
          notice("error", error.message);
        }
      });
      list.appendChild(row);
    }
  }

  async function loadSenders() {
    try {
      renderSenders((await api("GET", "/v1/settings/sender-addresses")).items);
    } catch (error) {
      notice("error", error.message);
    }
  }

  async function addSender(event) {
    event.preventDefault();
    const input = $("new-sender");
    $("add-sender").disabled = true;
    try {
      const added = await api("POST", "/v1/settings/sender-addresses", { email: input.value.trim() });
      $("verification-email").textContent = added.email;
      $("verification-instructions").textContent = added.instructions;
      $("verification-code").textContent = added.code;
      $("verification").hidden = false;
      input.value = "";
      notice("ok", added.email + " was added. Verify it by sending the email described below.");
      await loadSenders();
    } catch (error) {
      notice("error", error.message);
    } finally {
      $("add-sender").disabled = false;
    }
  }

  const KIND_TEXT = { address: "This address only", domain: "This domain and its subdomains" };

  function showNeverLogError(message) {
    const box = $("never-log-error");
    box.textContent = message;
    box.hidden = !message;
    if (message) $("new-never-log").setAttribute("aria-invalid", "true");
    else $("new-never-log").removeAttribute("aria-invalid");
  }

  function renderNeverLog(items) {
    const list = $("never-log");
    list.replaceChildren();
    $("never-log-empty").hidden = items.length > 0;
    for (const item of items) {
      const row = $("never-log-row").content.firstElementChild.cloneNode(true);
      row.dataset.entry = item.entry;
      row.dataset.kind = item.kind;
      row.querySelector(".email").textContent = item.entry;
      row.querySelector(".status-text").textContent = KIND_TEXT[item.kind];
      const remove = row.querySelector(".remove");
      remove.setAttribute("aria-label", "Remove " + item.entry + " from the never-log list");
      remove.addEventListener("click", async () => {
        remove.disabled = true;
        try {
          await api("DELETE", "/v1/settings/never-log/" + encodeURIComponent(item.entry));
          notice("ok", item.entry + " was removed from the never-log list; its mail is logged again from now on.");
          await loadNeverLog();
          $("new-never-log").focus();  // the button that had the focus is gone
        } catch (error) {
          remove.disabled = false;
          notice("error", error.message);
        }
      });
      list.appendChild(row);
    }
  }

  async function loadNeverLog() {
    try {
      renderNeverLog((await api("GET", "/v1/settings/never-log")).items);
    } catch (error) {
      notice("error", error.message);
    }
  }

  async function addNeverLog(event) {
    event.preventDefault();
    const input = $("new-never-log");
    $("add-never-log").disabled = true;
    try {
      const added = await api("POST", "/v1/settings/never-log", { entry: input.value });
      input.value = "";
      showNeverLogError("");
      notice("ok", added.entry + " is on the never-log list: its mail will not be logged.");
      await loadNeverLog();
    } catch (error) {
      showNeverLogError(error.message);
      notice("error", error.message);
      input.focus();
    } finally {
      $("add-never-log").disabled = false;
    }
  }

  $("copy-address").addEventListener("click", copyAddress);
  $("rotate-address").addEventListener("click", () => {
    $("rotate-confirm").hidden = false;
    $("rotate-yes").focus();
  });
  $("rotate-no").addEventListener("click", () => { $("rotate-confirm").hidden = true; });
  $("rotate-yes").addEventListener("click", rotate);
  $("sender-form").addEventListener("submit", addSender);
  $("never-log-form").addEventListener("submit", addNeverLog);
  $("new-never-log").addEventListener("input", () => showNeverLogError(""));
  if (!requireSession()) {
    $("address-loading").hidden = true;
    $("add-sender").disabled = true;
    $("add-never-log").disabled = true;
  } else {
    loadAddress();
    loadSenders();
    loadNeverLog();
  }
})();
