// Progressive enhancement only: without JavaScript every field is simply visible.
document.querySelectorAll("[data-reveal-when]").forEach(function (block) {
  var toggle = document.getElementById(block.getAttribute("data-reveal-when"));
  if (!toggle) return;
  function sync() { block.hidden = !toggle.checked; }
  toggle.addEventListener("change", sync);
  sync();
});

// A block shown for one value of a select: data-reveal-value="<select id>=<value>".
document.querySelectorAll("[data-reveal-value]").forEach(function (block) {
  var parts = block.getAttribute("data-reveal-value").split("=");
  var select = document.getElementById(parts[0]);
  if (!select) return;
  function sync() { block.hidden = select.value !== parts[1]; }
  select.addEventListener("change", sync);
  sync();
});

// Copy buttons: the text of the element named by data-copy goes to the clipboard.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Скопировано";
    });
  });
});

// Rotating the secret breaks the telephony app until it gets the new one: ask first.
document.querySelectorAll("form[data-megaplan-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-megaplan-confirm"))) event.preventDefault();
  });
});

// A form sent back with errors: the first one is where the eye and the cursor go.
function megaplanFocusFirstError() {
  var first = document.querySelector(".megaplan .has-error");
  if (!first) return;
  first.scrollIntoView({block: "center"});
  var input = first.querySelector("input:not([type=hidden]), select, textarea");
  if (input) input.focus({preventScroll: true});
}
megaplanFocusFirstError();

// The credential form is checked against Megaplan; a failed check must not cost the admin
// the password they typed, and the server never sends a password back. So the form goes in
// the background and, when it comes back with errors, only the form is replaced and the
// password put back from this page's memory.
document.querySelectorAll("form[data-keep-password]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.fetch || !window.DOMParser || form.dataset.sending) return;
    event.preventDefault();
    form.dataset.sending = "1";
    var password = form.querySelector("input[type=password]");
    var typed = password ? password.value : "";
    // redirect "manual": the page it leads to is loaded by the browser itself, so its
    // message («Учетные данные … добавлены») is shown there and not spent by this request
    fetch(form.getAttribute("action") || window.location.href,
          {method: "POST", body: new FormData(form), credentials: "same-origin", redirect: "manual"})
      .then(function (response) {
        if (response.type === "opaqueredirect") { window.location.assign(form.getAttribute("data-done-url")); return; }
        return response.text().then(function (html) {
          var fresh = response.status === 400 &&
            new DOMParser().parseFromString(html, "text/html").querySelector("form[data-keep-password]");
          if (!fresh) {  // anything else is shown as it came, never sent a second time
            document.open(); document.write(html); document.close();
            return;
          }
          form.innerHTML = fresh.innerHTML;
          var again = form.querySelector("input[type=password]");
          if (again) again.value = typed;
          delete form.dataset.sending;
          megaplanFocusFirstError();
        });
      })
      .catch(function () { delete form.dataset.sending; form.submit(); });  // no answer at all: as without script
  });
});

// Unticking «Активировать интеграцию» stops calls reaching Megaplan: ask, as «Отключить» does.
document.querySelectorAll("form[data-deactivate-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    var active = form.querySelector("input[name=active]");
    var leaving = event.submitter && event.submitter.hasAttribute("formaction");  // «Обновить список»
    if (leaving || !active || active.checked || form.getAttribute("data-was-active") !== "yes") return;
    if (!window.confirm(form.getAttribute("data-deactivate-confirm"))) event.preventDefault();
  });
});
