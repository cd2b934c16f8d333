import { useSyncExternalStore } from "react";
import { toastStore } from "./toasts";

/** An ARIA live region: what is pushed is read out at once, and stays until dismissed or
 * its time is up. */
export function Toasts() {
  const toasts = useSyncExternalStore(toastStore.subscribe, toastStore.current);
  return (
    <div className="toasts" role="region" aria-label="Notifications">
      <div aria-live="assertive" aria-atomic="false" aria-relevant="additions">
        {toasts.map((toast) => (
          <div key={toast.id} className={`toast toast-${toast.tone}`} role={toast.tone === "alert" ? "alert" : "status"}>
            <div className="toast-text">
              <strong>{toast.title}</strong>
              <span>{toast.body}</span>
            </div>
            <button type="button" className="link-button" onClick={() => toastStore.dismiss(toast.id)} aria-label={`Dismiss: ${toast.title}`}>
              Dismiss
            </button>
          </div>
        ))}
      </div>
    </div>
  );
}
