/** Signed out: log in, or create an account (then log in). */
import { $, busy } from "./dom.js";

export function mountAuth(api, onSignedIn) {
  const login = $("#login-form");
  const register = $("#register-form");
  const tabs = { login: $("#tab-login"), register: $("#tab-register") };

  const select = (which) => {
    login.hidden = which !== "login";
    register.hidden = which !== "register";
    tabs.login.setAttribute("aria-selected", String(which === "login"));
    tabs.register.setAttribute("aria-selected", String(which === "register"));
  };
  tabs.login.addEventListener("click", () => select("login"));
  tabs.register.addEventListener("click", () => select("register"));

  login.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(login);
    busy(login, async () => {
      await api.login(data.get("email"), data.get("password"));
      login.reset();
      onSignedIn();
    });
  });

  register.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(register);
    busy(register, async () => {
      await api.register(data.get("email"), data.get("password"), data.get("display_name").trim());
      register.reset();
      onSignedIn();
    });
  });

  return {
    /** Back to the login form (after signing out). */
    reset() {
      select("login");
    },
  };
}
