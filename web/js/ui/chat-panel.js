/** The chat panel: the stored history, then live messages, each once (deduplicated by the meeting). */
import { $, h, toast } from "./dom.js";

export function mountChat(meeting) {
  const list = $("#chat-messages");
  const form = $("#chat-form");
  list.replaceChildren();

  const add = (message) => {
    const time = new Date(message.created_at);
    const clock = time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const item = h(
      "li",
      { class: message.own ? "message own" : "message", dataset: { messageId: message.message_id } },
      h("span", { class: "sender" }, message.own ? "You" : message.sender_name),
      h("time", { datetime: time.toISOString() }, clock),
      h("p", { class: "text" }, message.text),
    );
    list.append(item);
    list.scrollTop = list.scrollHeight;
  };
  const byTime = (a, b) => new Date(a.created_at) - new Date(b.created_at);
  for (const message of [...meeting.chat.values()].sort(byTime)) add(message);
  const off = meeting.on("chat", add);

  const submit = async (event) => {
    event.preventDefault();
    const input = form.elements.text;
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      await meeting.sendChat(text);
    } catch (error) {
      toast(`Not sent: ${error.message}`, "error");
      if (!input.value) input.value = text;
    }
  };
  form.addEventListener("submit", submit);

  return () => {
    off();
    form.removeEventListener("submit", submit);
  };
}
