/* The pod sandbox ("pause") process of the local real node, built here with `gcc -static`
 * because no container registry is reachable to pull registry.k8s.io/pause.
 *
 * It holds the pod's namespaces open and does nothing else: it sleeps in pause(2) until SIGTERM
 * or SIGINT (exit 0), and reaps any child re-parented to it (when the pod shares one PID
 * namespace it is PID 1 there). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  if (sigaction(SIGTERM, &term, NULL) < 0 || sigaction(SIGINT, &term, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0) {
    return 1;
  }
  for (;;) {
    pause();
  }
}
