// The tap page: copy the tier-1 message to paste into a private WeChat chat.
(function () {
  "use strict";
  var copy = document.getElementById("copy");
  if (copy) {
    copy.addEventListener("click", function () {
      var text = document.getElementById("script").textContent;
      var done = function () { copy.textContent = "已复制 ✓ 去微信里粘贴发送"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(); });
      } else {
        select();
      }
      function select() {
        var range = document.createRange();
        range.selectNodeContents(document.getElementById("script"));
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      }
    });
  }
})();
