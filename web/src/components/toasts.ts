/** Notifications that pop on whatever page is open (fired alerts above all). */
export interface Toast {
  id: number;
  title: string;
  body: string;
  tone: "alert" | "info" | "error";
}

type Listener = () => void;

let toasts: Toast[] = [];
let nextId = 1;
const listeners = new Set<Listener>();

function changed(): void {
  for (const listener of [...listeners]) listener();
}

export const toastStore = {
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  current(): Toast[] {
    return toasts;
  },
  push(toast: Omit<Toast, "id">, lifetimeMs = 20_000): number {
    const id = nextId++;
    toasts = [...toasts.slice(-4), { ...toast, id }];
    changed();
    setTimeout(() => toastStore.dismiss(id), lifetimeMs);
    return id;
  },
  dismiss(id: number): void {
    if (!toasts.some((toast) => toast.id === id)) return;
    toasts = toasts.filter((toast) => toast.id !== id);
    changed();
  },
};
