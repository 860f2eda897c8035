// Luffy's admin: the date picker in Chinese and in the site's time zone, the periodic-task
// form's "schedule type" choice, and the enable switch on each periodic-task row.
(function () {
  "use strict";
  var body = document.body;

  // -- one time zone: "now" in the date picker is the site's wall clock, not the browser's ----
  var siteOffset = parseInt(body.dataset.siteUtcOffset, 10);
  if (window.moment && !isNaN(siteOffset)) {
    window.moment.now = function () {
      var browserOffset = -new Date().getTimezoneOffset();
      return Date.now() + (siteOffset - browserOffset) * 60000;
    };
  }

  // -- the date picker (bootstrap-daterangepicker, loaded by Flask-Admin's forms) in Chinese --
  var PICKER_LOCALE = {
    applyLabel: "确定",
    cancelLabel: "取消",
    fromLabel: "从",
    toLabel: "到",
    weekLabel: "周",
    customRangeLabel: "自定义",
    daysOfWeek: ["日", "一", "二", "三", "四", "五", "六"],
    monthNames: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
    firstDay: 1
  };
  if (window.jQuery) {
    // Flask-Admin's form.js announces itself with this event before it sets its pickers up.
    window.jQuery(document).on("adminFormReady", function () {
      var $ = window.jQuery;
      var original = $.fn.daterangepicker;
      if (!original || original.luffy) return;
      var wrapped = function (options, callback) {
        options = $.extend(true, { locale: PICKER_LOCALE }, options || {});
        if (options.separator === " to ") options.separator = " 至 ";
        return original.call(this, options, callback);
      };
      wrapped.luffy = true;
      $.fn.daterangepicker = wrapped;
    });
  }

  // -- periodic task form: one schedule type, only its field shown --------------------------
  var kind = document.getElementById("schedule_kind");
  if (kind) {
    var groups = {};
    ["interval", "crontab", "clocked", "solar"].forEach(function (name) {
      var field = document.getElementById(name);
      var group = field && field.closest(".form-group");
      if (group) groups[name] = group;
    });
    var showKind = function () {
      Object.keys(groups).forEach(function (name) {
        groups[name].hidden = name !== kind.value;
      });
      document.querySelectorAll("[data-schedule-kind]").forEach(function (part) {
        part.hidden = part.dataset.scheduleKind !== kind.value;
      });
    };
    kind.addEventListener("change", showKind);
    showKind();
  }

  // -- enable switches on the periodic task list --------------------------------------------
  var csrf = document.querySelector('meta[name="csrf-token"]');
  document.querySelectorAll("form.enable-toggle").forEach(function (form) {
    var box = form.querySelector("input[type=checkbox]");
    var status = form.querySelector(".toggle-status");
    box.addEventListener("change", function () {
      box.disabled = true;
      var data = new FormData(form);
      data.set("enabled", box.checked ? "1" : "0");
      fetch(form.action, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": csrf ? csrf.content : "" }
      }).then(function (response) {
        return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
      }).then(function (result) {
        if (!result.ok) throw new Error(result.answer.msg || "保存失败");
        box.checked = result.answer.enabled;
        status.textContent = result.answer.enabled ? "已启用" : "已停用";
      }).catch(function (error) {
        box.checked = !box.checked;
        status.textContent = "保存失败：" + error.message;
      }).then(function () { box.disabled = false; });
    });
  });
})();
