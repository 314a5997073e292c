"""Pages discovered from an installed app, as a user would write them."""

from django.http import JsonResponse

from django_faust import app
from django_faust.web import View

from .agents import order_counts


@app.page("count/<str:account>/")
@app.table_route(table=order_counts, match_info="account")
async def count(request, account):
    return JsonResponse({"account": account, "count": order_counts[account]})


@app.page("/faust-style/{account}/")
@app.table_route(table=order_counts, match_info="account")
async def faust_style(web, request, account):
    return web.json({"account": account, "count": order_counts[account]})


@app.page("by-query/")
@app.table_route(table=order_counts, query_param="account")
async def by_query(request):
    account = request.GET["account"]
    return JsonResponse({"account": account, "count": order_counts[account]})


@app.page("counter/")
class counter(View):
    async def get(self, request):
        return self.json({"total": sum(order_counts.values())})

    async def post(self, request):
        await app.send("tests-orders", key=request.POST["account"], value=1)
        return self.json({"sent": True}, status=202)


@app.page("/accounts/{account}/")
class account(View):
    """Faust's class form, the table route on the method."""

    @app.table_route(table=order_counts, match_info="account")
    async def get(self, request, account):
        return self.json({"account": account, "count": order_counts[account]})


@app.page("shard/")
@app.table_route(order_counts, "account")
async def shard(web, request):
    """Faust 1.0's positional ``shard_param``."""
    account = request.GET["account"]
    return web.json({"account": account, "count": order_counts[account]})
